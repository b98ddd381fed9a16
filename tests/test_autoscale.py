"""How many workers ``stratus autoscale`` wants for a queue (the supervisor itself runs in
tests/topology/test_autoscale.py)."""

from __future__ import annotations

from stratus.autoscale import Limits, target


def test_one_worker_per_jobs_per_worker_waiting_within_min_and_max() -> None:
    limits = Limits(min=0, max=3, jobs_per_worker=10)
    assert target({}, None, limits) == 0
    assert target({"a": 1}, None, limits) == 1  # any job: a worker
    assert target({"a": 10}, None, limits) == 1
    assert target({"a": 6, "b": 5}, None, limits) == 2
    assert target({"a": 1000}, None, limits) == 3
    assert target({}, None, Limits(min=1, max=3)) == 1


def test_only_the_served_models_count() -> None:
    limits = Limits(min=0, max=3, jobs_per_worker=10)
    assert target({"other": 50}, ["a"], limits) == 0
    assert target({"other": 50, "a": 3}, ["a"], limits) == 1
