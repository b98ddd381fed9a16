"""Models loaded on demand, on a real worker, SQLite store and echo engines that take time to
load and hold memory: loads, cold starts, idle unloads, a memory budget, failed loads, and a
worker that stops when idle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from stratus.config import ModelConfig
from stratus.engines.echo import EchoEngine
from stratus.models import ModelRegistry, ModelSpec
from stratus.store import ErrorType, SqliteJobStore, Status
from stratus.worker import Worker
from tests.worker.test_worker import put, until

pytestmark = pytest.mark.anyio
MB = 2**20


class Counted(EchoEngine):
    """An echo engine that counts, with its siblings, how many are loaded at once."""

    loaded_now: list[int]

    def __init__(self, shared: dict[str, int], **options: Any) -> None:
        super().__init__(options)
        self.shared = shared

    async def load(self) -> None:
        await super().load()
        self.shared["now"] += 1
        self.shared["peak"] = max(self.shared["peak"], self.shared["now"])

    async def unload(self) -> None:
        await super().unload()
        self.shared["now"] -= 1


def models(shared: dict[str, int], *specs: tuple[str, dict[str, Any], dict[str, Any]],
           ) -> ModelRegistry:
    return ModelRegistry([ModelSpec(ModelConfig(slug=slug, **config), Counted(shared, **opts))
                          for slug, config, opts in specs])


async def soon(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not come true")


async def started(store: SqliteJobStore, registry: ModelRegistry, **options: Any) -> Worker:
    for spec in registry:  # as the runtime starts them: on-demand ones tokenizer only
        await spec.engine.start(generate=spec.config.load != "on_demand")
    worker = Worker(store, registry, lease_seconds=1, sweep_interval=0.2, **options)
    worker.start()
    return worker


async def test_the_first_job_waits_queued_for_the_load_and_pays_the_cold_start(store) -> None:
    shared = {"now": 0, "peak": 0}
    registry = models(shared, ("lazy", {"load": "on_demand"}, {"load_ms": 300}))
    worker = await started(store, registry)
    spec = registry.resolve("lazy")
    assert worker.model_state(spec)["state"] == "unloaded"
    await put(store, "j1", "first one", model="lazy")
    await soon(lambda: worker.model_state(spec)["state"] == "loading")
    assert (await store.get("j1")).status is Status.QUEUED
    assert worker.model_state(spec)["estimated_ready_at"] is None  # never loaded before
    first = await until(store, "j1", Status.COMPLETED, Status.FAILED)
    assert first.status is Status.COMPLETED
    assert first.metrics.cold_start_ms >= 290  # the load takes 300 ms
    assert first.metrics.queue_ms >= first.metrics.cold_start_ms - 1
    await put(store, "j2", "second one", model="lazy")
    second = await until(store, "j2", Status.COMPLETED, Status.FAILED)
    assert second.metrics.cold_start_ms is None
    assert "cold_start_ms" not in second.metrics.to_dict()
    assert spec.engine.loads == 1 and worker.model_state(spec)["state"] == "ready"
    await worker.stop(1)


async def test_an_idle_model_is_unloaded_and_loaded_again_when_asked(store) -> None:
    shared = {"now": 0, "peak": 0}
    registry = models(shared, ("lazy", {"load": "on_demand", "idle_unload": 0.3},
                               {"load_ms": 50}))
    worker = await started(store, registry)
    engine = registry.resolve("lazy").engine
    await put(store, "j1", "one", model="lazy")
    await until(store, "j1", Status.COMPLETED)
    await soon(lambda: not engine.loaded)
    assert worker.model_state(registry.resolve("lazy"))["state"] == "unloaded"
    await put(store, "j2", "two", model="lazy")
    again = await until(store, "j2", Status.COMPLETED)
    assert again.metrics.cold_start_ms >= 45 and engine.loads == 2
    await worker.stop(1)


async def test_with_a_budget_for_one_model_two_take_turns_and_none_fails(store) -> None:
    shared = {"now": 0, "peak": 0}
    registry = models(shared,
                      ("a", {"load": "on_demand"}, {"load_ms": 30, "memory_mb": 100,
                                                    "delay_ms": 5}),
                      ("b", {"load": "on_demand"}, {"load_ms": 30, "memory_mb": 100,
                                                    "delay_ms": 5}))
    worker = await started(store, registry, memory_budget=150 * MB)
    ids = []
    for i in range(8):
        model = "ab"[i % 2]
        ids.append(f"{model}{i}")
        await put(store, ids[-1], f"turn {i}", model=model)
        if i % 3 == 0:
            await until(store, ids[-1], Status.COMPLETED, Status.FAILED)
    for job_id in ids:
        assert (await until(store, job_id, Status.COMPLETED, Status.FAILED)).status \
            is Status.COMPLETED
    assert shared["peak"] == 1  # never both loaded at once
    assert registry.resolve("a").engine.loads >= 2 and registry.resolve("b").engine.loads >= 2
    await worker.stop(1)


async def test_two_models_with_jobs_waiting_and_slow_loads_take_turns(store) -> None:
    """Loads slower than the worker's looks at the queue, and jobs of both models waiting
    together: each model runs what it was loaded for before the other's turn."""
    shared = {"now": 0, "peak": 0}
    options = {"load_ms": 400, "memory_mb": 100}
    registry = models(shared, ("a", {"load": "on_demand"}, options),
                      ("b", {"load": "on_demand"}, options))
    worker = await started(store, registry, memory_budget=150 * MB)
    ids = [f"{model}{i}" for i in range(3) for model in "ab"]
    for job_id in ids:
        await put(store, job_id, f"job {job_id}", model=job_id[0])
    for job_id in ids:
        record = await until(store, job_id, Status.COMPLETED, Status.FAILED, timeout=20)
        assert record.status is Status.COMPLETED
    assert shared["peak"] == 1
    loads = registry.resolve("a").engine.loads + registry.resolve("b").engine.loads
    assert loads <= 3  # a, b (and at most a again): no loading in circles
    await worker.stop(1)


async def test_a_model_that_cannot_load_fails_one_job_and_cools_down(store) -> None:
    shared = {"now": 0, "peak": 0}
    registry = models(shared, ("bad", {"load": "on_demand"}, {"fail_load": True}),
                      ("good", {"load": "on_demand"}, {}))
    worker = await started(store, registry, load_retry=60)
    await put(store, "b1", "x", model="bad")
    await put(store, "b2", "y", model="bad")
    failed = await until(store, "b1", Status.FAILED, Status.COMPLETED)
    assert failed.error_type == ErrorType.ENGINE
    assert "'bad' could not be loaded" in failed.error and "fail_load" in failed.error
    state = worker.model_state(registry.resolve("bad"))
    assert state["state"] == "cooldown" and "failed to load" in state["reason"]
    await put(store, "g1", "fine", model="good")  # other models are not held up
    assert (await until(store, "g1", Status.COMPLETED)).status is Status.COMPLETED
    assert (await store.get("b2")).status is Status.QUEUED  # waits for the retry
    await worker.stop(1)


async def test_a_worker_with_nothing_to_do_for_max_idle_stops(store) -> None:
    shared = {"now": 0, "peak": 0}
    registry = models(shared, ("echo", {}, {"delay_ms": 100}))
    worker = await started(store, registry, max_idle=0.3)
    await put(store, "j1", "a b c d e f")  # 0.6 s of work: longer than max_idle
    await until(store, "j1", Status.PROCESSING)
    await asyncio.sleep(0.4)
    assert not worker.idle_exit.is_set()  # not while a job runs
    assert (await until(store, "j1", Status.COMPLETED)).status is Status.COMPLETED
    async with asyncio.timeout(10):
        await worker.idle_exit.wait()
    assert worker.running == 0
    await worker.stop(1)
