"""What every job store does: the queue's state machine, leases, idempotency, retention,
notification. The suite runs against every backend (the ``make`` fixture in conftest)."""

from __future__ import annotations

import asyncio
import time

import pytest

from stratus.store import (
    ErrorType,
    IdempotencyConflict,
    IdempotentReplay,
    Metrics,
    NewJob,
    Priority,
    QueueFull,
    SqliteJobStore,
    Status,
)
from tests.conftest import answer

pytestmark = pytest.mark.anyio


def job(i: int | str, model: str = "m", account: str = "a", key: str | None = None,
        body_hash: str | None = None) -> NewJob:
    return NewJob(id=f"j{i}", account_id=account, model=model, requested_model=model,
                  request={"n": i}, idempotency_key=key, body_hash=body_hash)


async def test_submit_queues_in_order_with_positions(make) -> None:
    store = make()
    records = [(await store.submit(job(i)))[0] for i in range(3)]
    assert [r.status for r in records] == [Status.QUEUED] * 3
    assert [r.queue_position for r in records] == [1, 2, 3]
    other = (await store.submit(job("x", model="other")))[0]
    assert other.queue_position == 1  # positions are per model
    claim = await store.claim(["m"], "w")
    assert claim.job.id == "j0" and claim.job.status is Status.PROCESSING
    assert claim.job.attempts == 1 and claim.job.queue_position is None
    assert (await store.get("j1")).queue_position == 1
    assert (await store.get("j2")).queue_position == 2


async def test_queue_stats_count_what_waits_and_for_how_long(make) -> None:
    store = make()
    assert await store.queue_stats() == {}
    for i in range(3):
        await store.submit(job(i))
    await store.submit(job("x", model="other"))
    await asyncio.sleep(0.05)
    await store.claim(["m"], "w")  # a running job waits no more
    stats = await store.queue_stats()
    assert set(stats) == {"m", "other"}
    assert stats["m"][0] == 2 and stats["other"][0] == 1
    assert 0.04 <= stats["m"][1] < 60


async def test_claim_only_for_given_models(make) -> None:
    store = make()
    await store.submit(job(1, model="a"))
    assert await store.claim(["b"], "w") is None
    assert await store.claim([], "w") is None
    assert (await store.claim(["a", "b"], "w")).job.id == "j1"
    assert await store.claim(["a"], "w") is None


async def test_complete_once_by_the_lease_holder(make) -> None:
    store = make()
    await store.submit(job(1))
    claim = await store.claim(["m"], "w")
    assert await store.complete(claim, answer("hi"), Metrics(cost=1))
    assert not await store.complete(claim, answer("again"), Metrics(cost=2))
    assert not await store.fail(claim, "late", ErrorType.ENGINE)
    record = await store.get("j1")
    assert record.status is Status.COMPLETED
    assert record.result == answer("hi") and record.metrics == Metrics(cost=1)
    assert record.completed_at >= record.started_at >= record.created_at
    assert record.expires_at == pytest.approx(record.completed_at + 3600)


async def test_lapsed_lease_requeues_and_old_holder_cannot_complete(make) -> None:
    store = make(lease_seconds=0.05)
    await store.submit(job(1))
    first = await store.claim(["m"], "w1")
    await asyncio.sleep(0.1)
    report = await store.sweep()
    assert report.requeued == ("j1",)
    assert (await store.get("j1")).status is Status.QUEUED
    second = await store.claim(["m"], "w2")
    assert second.job.attempts == 2
    assert not await store.complete(first, answer("stale"), Metrics())
    assert not await store.heartbeat(first)
    assert await store.complete(second, answer("fresh"), Metrics())
    assert (await store.get("j1")).result == answer("fresh")


async def test_heartbeat_keeps_the_lease(make) -> None:
    store = make(lease_seconds=0.2)
    await store.submit(job(1))
    claim = await store.claim(["m"], "w")
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await store.heartbeat(claim)
        assert (await store.sweep()).requeued == ()
    assert (await store.get("j1")).status is Status.PROCESSING


async def test_out_of_attempts_fails(make) -> None:
    store = make(lease_seconds=0.01, max_attempts=2)
    await store.submit(job(1))
    for _ in range(2):
        assert await store.claim(["m"], "w") is not None
        await asyncio.sleep(0.03)
        await store.sweep()
    record = await store.get("j1")
    assert record.status is Status.FAILED
    assert record.error_type == ErrorType.WORKER_LOST and "2 times" in record.error


async def test_release_returns_job_without_spending_an_attempt(make) -> None:
    store = make()
    await store.submit(job(1))
    claim = await store.claim(["m"], "w")
    assert await store.release(claim)
    record = await store.get("j1")
    assert record.status is Status.QUEUED and record.attempts == 0
    assert record.started_at is None


async def test_a_busy_hand_back_is_counted_apart_from_attempts(make) -> None:
    store = make()
    await store.submit(job(1))
    for n in (1, 2):
        claim = await store.claim(["m"], "w")
        assert await store.release(claim, busy=True)
        record = await store.get("j1")
        assert record.status is Status.QUEUED and record.attempts == 0
        assert record.handbacks == n
    assert await store.release(await store.claim(["m"], "w"))  # a shutdown's hand-back
    assert (await store.get("j1")).handbacks == 2


async def test_cancel_queued_processing_and_ended(make) -> None:
    store = make()
    await store.submit(job(1))
    await store.submit(job(2))
    claim = await store.claim(["m"], "w")
    for job_id in ("j1", "j2"):
        record, cancelled = await store.cancel(job_id)
        assert cancelled and record.status is Status.FAILED and record.error == "cancelled"
    assert not await store.complete(claim, answer(), Metrics())
    record, cancelled = await store.cancel("j1")
    assert not cancelled and record.status is Status.FAILED
    assert await store.cancel("nope") == (None, False)


async def test_idempotency(make) -> None:
    store = make()
    first, created = await store.submit(job(1, key="k", body_hash="h1"))
    assert created
    again, created = await store.submit(job(2, key="k", body_hash="h1"))
    assert not created and again.id == first.id
    with pytest.raises(IdempotencyConflict) as info:
        await store.submit(job(3, key="k", body_hash="h2"))
    assert info.value.job_id == first.id
    other_account, created = await store.submit(job(4, account="b", key="k", body_hash="h2"))
    assert created and other_account.id == "j4"


async def test_expired_results_vanish(make) -> None:
    store = make(result_ttl=0.05, keep_expired=0)
    await store.submit(job(1))
    claim = await store.claim(["m"], "w")
    await store.complete(claim, answer(), Metrics())
    assert await store.get("j1") is not None
    await asyncio.sleep(0.1)
    assert await store.get("j1") is None
    assert (await store.sweep()).expired == 1


async def test_an_expired_job_is_kept_a_while_for_settlement(make) -> None:
    store = make(result_ttl=0.05)
    await store.submit(job(1))
    await store.complete(await store.claim(["m"], "w"), answer(), Metrics(cost=1.0))
    await asyncio.sleep(0.1)
    assert await store.get("j1") is None  # clients see it gone
    assert (await store.sweep()).expired == 0
    kept = await store.get("j1", expired=True)
    assert kept is not None and kept.status is Status.COMPLETED


async def test_idempotent_replay_after_the_job_expired_never_runs_again(make) -> None:
    store = make(result_ttl=0.05, keep_expired=0)
    await store.submit(job(1, key="k", body_hash="h"))
    await store.complete(await store.claim(["m"], "w"), answer(), Metrics())
    await asyncio.sleep(0.1)
    await store.sweep()
    assert await store.get("j1") is None
    assert await store.idempotent("a", "k") == ("j1", "h")
    with pytest.raises(IdempotentReplay) as replay:
        await store.submit(job(2, key="k", body_hash="h"))
    assert replay.value.job_id == "j1"
    assert await store.get("j2") is None
    assert await store.claim(["m"], "w") is None


async def test_queue_limit_is_checked_with_the_insert(make) -> None:
    store = make()
    limited = [NewJob(id=f"q{i}", account_id="a", model="m", requested_model="m",
                      request={}, max_queue=3) for i in range(8)]
    results = await asyncio.gather(*(store.submit(j) for j in limited),
                                   return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 3
    assert all(isinstance(r, QueueFull) and r.depth == 3 for r in results
               if isinstance(r, BaseException))
    assert await store.queued("m") == 3


async def test_a_cancelled_running_job_takes_its_worker_usage_once(make) -> None:
    store = make()
    await store.submit(job(1))
    claim = await store.claim(["m"], "w")
    record, cancelled = await store.cancel("j1")
    assert cancelled and record.started_at is not None and record.cost == 0
    assert await store.record_usage(claim, Metrics(output_tokens=3, cost=0.5))
    assert not await store.record_usage(claim, Metrics(output_tokens=9, cost=9.0))
    record = await store.get("j1")
    assert record.error_type == ErrorType.CANCELLED and record.cost == 0.5
    assert not await store.complete(claim, answer(), Metrics())  # still ended, as cancelled


async def test_usage_is_only_for_a_cancelled_job(make) -> None:
    store = make()
    await store.submit(job(1))
    claim = await store.claim(["m"], "w")
    assert not await store.record_usage(claim, Metrics(output_tokens=3, cost=0.5))
    await store.fail(claim, "boom", ErrorType.ENGINE)
    assert not await store.record_usage(claim, Metrics(output_tokens=3, cost=0.5))
    assert (await store.get("j1")).cost == 0


async def test_jobs_of_a_model_no_longer_served_fail(make) -> None:
    store = make()
    await store.submit(job(1, model="gone"))
    await store.submit(job(2, model="gone"))
    await store.claim(["gone"], "dead-worker")
    await store.submit(job(3, model="kept"))
    failed = await store.fail_unserved(["kept"], "no longer served")
    assert sorted(failed) == ["j1", "j2"]
    for job_id in failed:
        record = await store.get(job_id)
        assert record.status is Status.FAILED and record.error == "no longer served"
    assert (await store.get("j3")).status is Status.QUEUED


async def test_wait_for_change_wakes_on_notification(make) -> None:
    store = make()
    await store.submit(job(1))
    waiter = asyncio.create_task(store.wait_for_change("j1", Status.QUEUED, 30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    await store.claim(["m"], "w")
    record = await asyncio.wait_for(waiter, 5)
    assert record.status is Status.PROCESSING
    assert time.monotonic() - started < 5


async def test_wait_for_change_times_out_unchanged(make) -> None:
    store = make()
    await store.submit(job(1))
    record = await store.wait_for_change("j1", Status.QUEUED, 0.05)
    assert record.status is Status.QUEUED
    assert await store.wait_for_change("nope", Status.QUEUED, 0.05) is None


async def test_wait_until_ended_sleeps_through_the_claim(make) -> None:
    store = make()
    await store.submit(job(1))
    waiter = asyncio.create_task(store.wait_until_ended("j1", 30))
    await asyncio.sleep(0.05)
    claim = await store.claim(["m"], "w")
    await asyncio.sleep(0.05)
    assert not waiter.done()  # started is not ended
    await store.complete(claim, answer("done"), Metrics(cost=0))
    record = await asyncio.wait_for(waiter, 5)
    assert record.status is Status.COMPLETED
    at_timeout = await store.wait_until_ended("j1", 0.05)
    assert at_timeout.status is Status.COMPLETED
    await store.submit(job(2))
    assert (await store.wait_until_ended("j2", 0.05)).status is Status.QUEUED
    assert await store.wait_until_ended("nope", 0.05) is None


async def test_a_cancel_ends_the_wait_until_ended(make) -> None:
    store = make()
    await store.submit(job(1))
    waiter = asyncio.create_task(store.wait_until_ended("j1", 30))
    await asyncio.sleep(0.05)
    await store.cancel("j1")
    assert (await asyncio.wait_for(waiter, 5)).error_type == ErrorType.CANCELLED


async def test_wait_for_work_wakes_on_submit(make) -> None:
    store = make()
    await store.wait_for_work(0)  # clear anything pending
    waiter = asyncio.create_task(store.wait_for_work(30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.submit(job(1))
    await asyncio.wait_for(waiter, 5)


async def test_input_tokens_are_kept_with_the_job(make) -> None:
    store = make()
    record, _ = await store.submit(NewJob(id="t1", account_id="a", model="m",
                                          requested_model="m", request={}, input_tokens=42))
    assert record.input_tokens == 42 and (await store.get("t1")).input_tokens == 42


async def test_ending_a_job_returns_it_as_it_ended(make) -> None:
    store = make()
    await store.submit(job(1))
    await store.submit(job(2))
    done = await store.complete(await store.claim(["m"], "w"), answer("hi"), Metrics(cost=1))
    assert done.id == "j1" and done.status is Status.COMPLETED and done.result == answer("hi")
    failed = await store.fail(await store.claim(["m"], "w"), "boom", ErrorType.ENGINE)
    assert failed.id == "j2" and failed.status is Status.FAILED and failed.error == "boom"


def batch_job(i: int, model: str = "m", **fields: object) -> NewJob:
    return NewJob(id=f"b{i}", account_id="a", model=model, requested_model=model,
                  request={"n": i}, priority=Priority.BATCH, batch_id="batch1",
                  custom_id=f"c{i}", **fields)  # type: ignore[arg-type]


async def test_interactive_jobs_are_claimed_before_batch_jobs(make) -> None:
    store = make()
    await store.submit_many([batch_job(i) for i in range(3)])
    late = (await store.submit(job("late")))[0]
    assert late.queue_position == 1  # ahead of every batch job
    assert (await store.get("b0")).queue_position == 2
    assert (await store.get("b2")).queue_position == 4
    claimed = [(await store.claim(["m"], "w")).job.id for _ in range(4)]
    assert claimed == ["jlate", "b0", "b1", "b2"]


async def test_batch_jobs_do_not_count_against_the_interactive_queue_limit(make) -> None:
    store = make()
    await store.submit_many([batch_job(i) for i in range(5)])
    limited = NewJob(id="q", account_id="a", model="m", requested_model="m", request={},
                     max_queue=1)
    assert (await store.submit(limited))[0].status is Status.QUEUED
    with pytest.raises(QueueFull):
        await store.submit(NewJob(id="q2", account_id="a", model="m", requested_model="m",
                                  request={}, max_queue=1))
    assert await store.queued("m") == 6


async def test_submit_many_is_all_or_nothing(make) -> None:
    store = make()
    calls = []

    def refuse(*args: object) -> None:
        calls.append(args)
        raise RuntimeError("no credit")

    async def refuse_async(*args: object) -> None:
        refuse(*args)

    before = refuse if isinstance(store, SqliteJobStore) else refuse_async
    with pytest.raises(RuntimeError):
        await store.submit_many([batch_job(i) for i in range(3)], before_insert=before)
    assert calls and await store.get("b0") is None and await store.queued("m") == 0


async def test_a_job_that_starts_failed_keeps_its_error_type(make) -> None:
    store = make()
    await store.submit_many([batch_job(1, blocked="unknown model", blocked_type="not_found"),
                             batch_job(2)])
    failed = await store.get("b1")
    assert failed.status is Status.FAILED and failed.error_type == "not_found"
    assert failed.error == "unknown model"
    assert (await store.claim(["m"], "w")).job.id == "b2"


async def test_a_job_may_keep_its_result_longer_than_the_store(make) -> None:
    store = make(result_ttl=0.05, keep_expired=0)
    await store.submit_many([batch_job(1, retain=3600.0)])
    await store.submit(job(2))
    for _ in range(2):
        claim = await store.claim(["m"], "w")
        await store.complete(claim, answer("x"), Metrics())
    cancelled = (await store.submit(job(3)))[0]
    await store.cancel(cancelled.id)
    await asyncio.sleep(0.1)
    await store.sweep()
    kept = await store.get("b1")
    assert kept is not None and kept.expires_at - kept.completed_at == pytest.approx(3600)
    assert await store.get("j2") is None and await store.get("j3") is None


async def test_end_queued_ends_only_queued_jobs_once(make) -> None:
    store = make()
    await store.submit_many([batch_job(i) for i in range(3)])
    running = await store.claim(["m"], "w")
    ended = await store.end_queued(["b0", "b1", "b2", "nope"], "gone", ErrorType.EXPIRED.value)
    assert sorted(r.id for r in ended) == ["b1", "b2"]
    assert all(r.status is Status.FAILED and r.error_type == "expired" and r.error == "gone"
               for r in ended)
    assert await store.end_queued(["b1", "b2"], "again", ErrorType.CANCELLED.value) == []
    assert (await store.get(running.job.id)).status is Status.PROCESSING
