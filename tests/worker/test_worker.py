"""The worker as a state machine: real SQLite store, real echo engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratus._sqlite import SqliteDB
from stratus.accounts import HistoryQuery
from stratus.config import ModelConfig
from stratus.engines import EngineBusy, GenerationRequest
from stratus.engines.echo import EchoEngine
from stratus.models import ModelRegistry, ModelSpec
from stratus.store import ErrorType, NewJob, SqliteJobStore, Status
from stratus.worker import Worker

pytestmark = pytest.mark.anyio


class BrokenEngine(EchoEngine):
    """An engine whose generation raises part-way, as a crashed runtime would."""

    async def generate(self, request: GenerationRequest) -> AsyncIterator:
        raise RuntimeError("device lost")
        yield  # pragma: no cover


class BusyEngine(EchoEngine):
    """An engine whose upstream is at capacity for its first ``busy`` requests."""

    def __init__(self, busy: int) -> None:
        super().__init__()
        self.busy = busy
        self.calls = 0

    async def generate(self, request: GenerationRequest) -> AsyncIterator:
        self.calls += 1
        if self.calls <= self.busy:
            raise EngineBusy("upstream at capacity", retry_after=0.05)
        async for event in super().generate(request):
            yield event


def registry(delay_ms: float = 0, slots: int = 8, timeout: float = 60) -> ModelRegistry:
    config = ModelConfig(slug="echo", batch_slots=slots, execution_timeout=timeout)
    broken = ModelConfig(slug="broken")
    return ModelRegistry([ModelSpec(config, EchoEngine({"delay_ms": delay_ms}, slots=slots)),
                          ModelSpec(broken, BrokenEngine())])


def request(text: str, max_tokens: int = 100) -> dict:
    return GenerationRequest(
        messages=({"role": "user", "parts": ({"text": text},)},), max_tokens=max_tokens,
    ).model_dump(mode="json")


async def put(store: SqliteJobStore, job_id: str, text: str, model: str = "echo") -> None:
    await store.submit(NewJob(id=job_id, account_id="a", model=model,
                              requested_model="alias", request=request(text)))


async def until(store: SqliteJobStore, job_id: str, *states: Status, timeout: float = 10):
    async with asyncio.timeout(timeout):
        record = await store.get(job_id)
        while record.status not in states:
            record = await store.wait_for_change(job_id, record.status, 1)
    return record


def start(store: SqliteJobStore, models: ModelRegistry) -> Worker:
    worker = Worker(store, models, lease_seconds=1, sweep_interval=0.2)
    worker.start()
    return worker


async def test_queued_job_completes_with_message_and_metrics(store) -> None:
    worker = start(store, registry())
    await put(store, "j1", "hello there world")
    record = await until(store, "j1", Status.COMPLETED, Status.FAILED)
    assert record.status is Status.COMPLETED
    assert record.result.content == ({"type": "text", "text": "hello there world"},)
    assert record.result.model == "alias"
    assert record.metrics.output_tokens == 3 and record.metrics.input_tokens == 3
    assert record.metrics.queue_ms >= 0
    await worker.stop(1)


async def test_at_most_batch_slots_run_at_once(store) -> None:
    worker = start(store, registry(delay_ms=20, slots=2))
    for i in range(5):
        await put(store, f"j{i}", "a b c d e f g h")
    await until(store, "j0", Status.PROCESSING)
    peak = 0

    def running(conn) -> int:  # in one read: a count across several reads can overlap
        return conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'PROCESSING'"
                            ).fetchone()[0]

    for _ in range(100):
        peak = max(peak, await store._db.read(running))
        if await store.queued("echo") == 0 and peak and not await store._db.read(running):
            break
        await asyncio.sleep(0.01)
    for i in range(5):
        assert (await until(store, f"j{i}", Status.COMPLETED)).status is Status.COMPLETED
    assert peak <= 2 and worker.running == 0
    await worker.stop(1)


async def test_cancel_stops_generation_and_frees_the_slot(store) -> None:
    worker = start(store, registry(delay_ms=50, slots=1))
    await put(store, "long", " ".join(["w"] * 200))
    await put(store, "next", "quick one")
    await until(store, "long", Status.PROCESSING)
    _record, cancelled = await store.cancel("long")
    assert cancelled
    done = await until(store, "next", Status.COMPLETED, timeout=5)
    assert done.result.text == "quick one"
    final = await store.get("long")
    assert final.status is Status.FAILED and final.error == "cancelled" and final.result is None
    await worker.stop(1)


async def test_execution_timeout_fails_the_job(store) -> None:
    worker = start(store, registry(delay_ms=50, timeout=0.2))
    await put(store, "slow", " ".join(["w"] * 50))
    record = await until(store, "slow", Status.FAILED, Status.COMPLETED)
    assert record.status is Status.FAILED and record.error_type == ErrorType.TIMEOUT
    await worker.stop(1)


async def test_engine_failure_fails_the_job_and_the_worker_goes_on(store) -> None:
    worker = start(store, registry())
    await put(store, "bad", "x", model="broken")
    record = await until(store, "bad", Status.FAILED, Status.COMPLETED)
    assert record.error_type == ErrorType.ENGINE and "device lost" in record.error
    await put(store, "good", "still here")
    assert (await until(store, "good", Status.COMPLETED)).status is Status.COMPLETED
    await worker.stop(1)


async def test_stop_finishes_within_grace_and_hands_back_the_rest(store) -> None:
    worker = start(store, registry(delay_ms=20, slots=2))
    await put(store, "short", "a b c")
    await put(store, "long", " ".join(["w"] * 500))
    await until(store, "long", Status.PROCESSING)
    await until(store, "short", Status.PROCESSING, Status.COMPLETED)
    await worker.stop(grace=0.5)
    assert (await store.get("short")).status is Status.COMPLETED
    handed_back = await store.get("long")
    assert handed_back.status is Status.QUEUED and handed_back.attempts == 0
    await put(store, "after", "x")
    await asyncio.sleep(0.2)
    assert (await store.get("after")).status is Status.QUEUED  # a stopped worker claims nothing


async def test_lost_lease_stops_the_generation(store) -> None:
    worker = start(store, registry(delay_ms=20))
    await put(store, "j", " ".join(["w"] * 500))
    await until(store, "j", Status.PROCESSING)
    assert (await store.sweep()).requeued == ()  # the heartbeat keeps the lease
    # The lease is taken away, as the sweep of a lapsed lease would.
    await store._db.write(lambda conn: conn.execute(
        "UPDATE jobs SET status = 'QUEUED', lease_token = NULL WHERE id = 'j'"))
    store._notify.job_changed("j")
    # The job went back to the queue and ran again from the start: this worker's first
    # generation was stopped, not left to write its result.
    record = await until(store, "j", Status.COMPLETED, timeout=20)
    assert record.attempts == 2
    await worker.stop(1)


async def test_output_policy_stops_the_job_and_the_outcome_is_settled(tmp_path: Path) -> None:
    from stratus.accounts import NANO, Opening, SqliteAccounts
    from stratus.config import PolicyConfig, PolicyRule
    from stratus.outcomes import Outcomes
    from stratus.policy import ContentPolicy

    db = SqliteDB(tmp_path / "p.db")
    try:
        store, accounts = SqliteJobStore(db, lease_seconds=1), SqliteAccounts(db)
        key, _ = await accounts.create_key("team", credits=NANO)
        for job_id, text in (("ok", "all fine here"), ("bad", "fine then secret7 more")):
            await accounts.open_request(Opening(
                request_id=job_id, account_id=key.account_id, key_id=key.id, model="alias",
                slug="echo", reserve=NANO // 100, reserve_note="test"))
            await store.submit(NewJob(id=job_id, account_id=key.account_id, model="echo",
                                      requested_model="alias", request=request(text)))
        policy = ContentPolicy(PolicyConfig(rules=(
            PolicyRule(name="secrets", on=("output",), patterns=(r"secret\d",)),)))
        worker = Worker(store, registry(), lease_seconds=1, sweep_interval=0.2,
                        outcomes=Outcomes(store, accounts), policy=policy)
        worker.start()
        try:
            bad = await until(store, "bad", Status.FAILED, Status.COMPLETED)
            ok = await until(store, "ok", Status.FAILED, Status.COMPLETED)
        finally:
            await worker.stop(1)
        assert (bad.status, bad.error_type) == (Status.FAILED, ErrorType.POLICY)
        assert bad.error == "blocked by the content policy: the output matched rule 'secrets'"
        assert ok.status is Status.COMPLETED
        entries = {e.id: e for e in (await accounts.history(key.account_id,
                                                            HistoryQuery()))[0]}
        assert (entries["bad"].status, entries["bad"].cost) == ("FAILED", 0)
        assert entries["ok"].status == "COMPLETED" and entries["ok"].cost > 0
        assert (await accounts.account("team")).reserved == 0
    finally:
        db.close()


async def test_a_busy_engine_hands_the_job_back_without_spending_attempts(store) -> None:
    engine = BusyEngine(busy=3)
    models = ModelRegistry([ModelSpec(ModelConfig(slug="echo"), engine)])
    worker = start(store, models)
    await put(store, "later", "served after all")
    record = await until(store, "later", Status.COMPLETED, Status.FAILED)
    assert record.status is Status.COMPLETED and record.result.text == "served after all"
    assert record.handbacks == 3 and record.attempts == 1 and engine.calls == 4
    await worker.stop(1)


async def test_an_engine_busy_for_too_long_fails_the_job(store) -> None:
    models = ModelRegistry([ModelSpec(ModelConfig(slug="echo"), BusyEngine(busy=100))])
    worker = Worker(store, models, lease_seconds=1, sweep_interval=0.2, max_handbacks=2)
    worker.start()
    await put(store, "never", "x")
    record = await until(store, "never", Status.FAILED, Status.COMPLETED)
    assert record.error_type == ErrorType.ENGINE and "stayed busy" in record.error
    assert record.handbacks == 2 and record.attempts == 1
    await worker.stop(1)
