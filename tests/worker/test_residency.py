"""The decisions of which models a worker holds loaded, without any model."""

from __future__ import annotations

from stratus.worker._residency import Residency, Resident

MB = 2**20


def residency(budget: int | None = None, *residents: Resident) -> Residency:
    return Residency.of(residents, budget=budget, load_retry=10)


def demand(slug: str, size: int = 100 * MB, idle_unload: float = 0.0) -> Resident:
    return Resident(slug, on_demand=True, size=size, idle_unload=idle_unload)


def test_a_model_with_jobs_waiting_is_loaded_one_at_a_time() -> None:
    r = residency(None, demand("a"), demand("b"), Resident("e", on_demand=False, size=0,
                                                           state="loaded"))
    assert r.claimable("e") and not r.claimable("a")
    assert r.unloaded_on_demand() == ["a", "b"]
    assert r.plan(set(), {}, 0.0).load == ()
    first = r.plan({"b"}, {}, 1.0)
    assert first.load == ("b",)
    r.loading("b", 1.0)
    assert r.plan({"a"}, {}, 1.5).load == ()  # one load at a time
    r.loaded("b", 3.0)
    assert r.claimable("b")
    assert r.take_cold_start("b") == 2000.0
    assert r.take_cold_start("b") is None  # paid once, by the first job
    assert r.plan({"a"}, {}, 3.0).load == ("a",)


def test_the_model_waiting_longest_is_loaded_first() -> None:
    r = residency(None, demand("a"), demand("b"), demand("c"))
    r.loading("a", 0.0)
    r.plan({"b"}, {}, 1.0)  # b waits from 1.0 (a is loading)
    r.plan({"b", "c"}, {}, 2.0)  # c from 2.0
    r.loaded("a", 3.0)
    assert r.plan({"c", "b"}, {}, 4.0).load == ("b",)


def test_an_idle_model_is_unloaded_after_idle_unload_and_not_while_it_runs() -> None:
    r = residency(None, demand("a", idle_unload=60),
                  Resident("e", on_demand=False, size=0, idle_unload=60, state="loaded"))
    r.loading("a", 0.0)
    r.loaded("a", 1.0)
    plan = r.plan(set(), {}, 30.0)
    assert plan.unload == () and plan.wake_in == 31.0
    assert r.plan(set(), {"a": 1}, 100.0).unload == ()  # running: kept
    r.used("a", 100.0)
    assert r.plan(set(), {}, 159.0).unload == ()
    assert r.plan(set(), {}, 160.0).unload == ("a",)  # eager "e" never is


def test_never_unloaded_when_idle_unload_is_zero() -> None:
    r = residency(None, demand("a", idle_unload=0))
    r.loading("a", 0.0)
    r.loaded("a", 1.0)
    assert r.plan(set(), {}, 1e9) == r.plan(set(), {}, 1e9)
    assert r.plan(set(), {}, 1e9).unload == ()


def test_the_budget_unloads_the_least_recently_used_idle_model_first() -> None:
    r = residency(250 * MB, demand("a"), demand("b"), demand("c"))
    for slug, at in (("a", 1.0), ("b", 2.0)):
        r.loading(slug, at)
        r.loaded(slug, at)
    r.found_nothing(["a", "b"])  # both ran what they were loaded for
    r.used("a", 5.0)  # b is now the least recently used
    plan = r.plan({"c"}, {}, 6.0)
    assert plan.unload == ("b",) and plan.load == ()  # out first, then in
    r.unloading("b", 6.0)
    assert r.plan({"c"}, {}, 6.5).load == ()  # not while b is still going out
    r.unloaded("b", 7.0)
    assert r.plan({"c"}, {}, 7.0).load == ("c",)


def test_a_busy_model_in_the_way_drains_before_the_swap() -> None:
    r = residency(150 * MB, demand("a"), demand("b"))
    r.loading("a", 0.0)
    r.loaded("a", 1.0)
    r.found_nothing(["a"])
    plan = r.plan({"b"}, {"a": 2}, 2.0)
    assert plan.load == () and plan.hold == frozenset({"a"})  # a takes no new job
    plan = r.plan({"b"}, {}, 3.0)  # a has drained
    assert plan.unload == ("a",) and plan.load == () and not plan.hold
    r.unloading("a", 3.0)
    r.unloaded("a", 3.5)
    assert r.plan({"b"}, {}, 3.5).load == ("b",)
    r.loading("b", 3.5)
    assert r.held() == 100 * MB  # never both at once


def test_a_model_larger_than_the_budget_is_loaded_alone() -> None:
    r = residency(50 * MB, demand("big"))
    assert r.plan({"big"}, {}, 0.0).load == ("big",)


def test_a_failed_load_waits_load_retry_before_it_is_tried_again() -> None:
    r = residency(None, demand("a"))
    r.loading("a", 0.0)
    r.failed("a", "no file", 1.0)
    assert r.residents["a"].error == "no file"
    plan = r.plan({"a"}, {}, 5.0)
    assert plan.load == () and plan.wake_in == 6.0
    assert r.plan({"a"}, {}, 11.0).load == ("a",)


def test_a_model_just_loaded_runs_its_queue_before_it_can_be_swapped_out() -> None:
    r = residency(150 * MB, demand("a"), demand("b"))
    r.loading("a", 0.0)
    r.loaded("a", 1.0)  # b's jobs came while a loaded: a has run nothing yet
    plan = r.plan({"b"}, {}, 1.0)
    assert plan.unload == () and plan.load == () and "a" not in plan.hold
    r.used("a", 1.1)  # a runs its jobs, and claims more while there are
    assert "a" not in r.plan({"b"}, {"a": 4}, 1.2).hold
    r.found_nothing(["a"])  # its queue is empty: now it drains for b
    assert r.plan({"b"}, {"a": 1}, 1.5).hold == frozenset({"a"})
    assert r.plan({"b"}, {}, 2.0).unload == ("a",)


def test_a_busy_model_gets_one_turn_not_for_ever() -> None:
    r = residency(150 * MB, demand("a"), demand("b"))
    r.loading("a", 0.0)
    r.loaded("a", 1.0)
    assert "a" not in r.plan({"b"}, {"a": 8}, 20.0).hold  # jobs keep coming for a
    assert r.plan({"b"}, {"a": 8}, 31.0).hold == frozenset({"a"})  # its turn is over


def test_a_model_loaded_for_jobs_another_worker_took_can_be_swapped_out() -> None:
    r = residency(150 * MB, demand("a"), demand("b"))
    r.loading("a", 0.0)
    r.loaded("a", 1.0)
    r.found_nothing(["a"])
    assert r.plan({"b"}, {}, 1.5).unload == ("a",)
