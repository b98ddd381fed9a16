"""Settling ended jobs: once, and also when the process died before it could."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from stratus._sqlite import SqliteDB
from stratus.accounts import NANO, Opening, SqliteAccounts
from stratus.outcomes import RECONCILE_AFTER, RECONCILE_BATCH, Outcomes
from stratus.store import Metrics, NewJob, SqliteJobStore, Status
from tests.conftest import answer

pytestmark = pytest.mark.anyio


@pytest.fixture
def parts(tmp_path: Path):
    db = SqliteDB(tmp_path / "s.db")
    store, accounts = SqliteJobStore(db), SqliteAccounts(db)
    webhooks: list[bool] = []
    yield store, accounts, Outcomes(store, accounts, on_webhook=lambda: webhooks.append(True))
    db.close()


async def open_job(store, accounts, account_id: str, job_id: str, webhook: str | None = None):
    await accounts.open_request(Opening(
        request_id=job_id, account_id=account_id, key_id="key_x", model="echo", slug="echo",
        reserve=NANO // 10, reserve_note="test", webhook_url=webhook))
    await store.submit(NewJob(id=job_id, account_id=account_id, model="echo",
                              requested_model="echo", request={}))


async def test_reconcile_settles_what_a_dead_process_left_open(parts) -> None:
    store, accounts, outcomes = parts
    key, _ = await accounts.create_key("team", credits=NANO)
    team = key.account_id
    await open_job(store, accounts, team, "done", webhook="http://example.com/hook")
    await open_job(store, accounts, team, "running")
    claim = await store.claim(["echo"], "w1")
    # the process completed the job, then died before settling it
    await store.complete(claim, answer(), Metrics(cost=0.03, input_tokens=1, output_tokens=2))
    # and another request was reserved but never queued
    await accounts.open_request(Opening(request_id="never-queued", account_id=team,
                                        key_id="key_x", model="echo", slug="echo",
                                        reserve=NANO // 10, reserve_note="test"))
    assert await outcomes.reconcile() == 0  # too recent to judge
    assert await outcomes.reconcile(time.time() + RECONCILE_AFTER + 1) == 2
    account = await accounts.account("team")
    assert account.balance == NANO - 30_000_000
    assert account.reserved == NANO // 10  # "running" is still queued: still held
    assert (await accounts.request(team, "done")).webhook_status == "pending"
    lost = await accounts.request(team, "never-queued")
    assert lost.status == "FAILED" and lost.cost == 0
    # settling again changes nothing
    await outcomes.ended("done")
    assert (await accounts.account("team")).balance == NANO - 30_000_000


async def test_started_then_cancelled(parts) -> None:
    store, accounts, outcomes = parts
    key, _ = await accounts.create_key("team", credits=NANO)
    await open_job(store, accounts, key.account_id, "j")
    claim = await store.claim(["echo"], "w1")
    await outcomes.started(claim.job)
    assert (await accounts.request(key.account_id, "j")).status == "PROCESSING"
    record, _ = await store.cancel("j")
    await outcomes.settle(record)
    entry = await accounts.request(key.account_id, "j")
    assert (entry.status, entry.error, entry.cost) == ("FAILED", "cancelled", 0)
    assert (await accounts.account("team")).reserved == 0
    assert record.status is Status.FAILED


async def test_reconcile_settles_a_job_whose_result_expired_while_the_process_was_down(
        tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "down.db")
    store, accounts = SqliteJobStore(db, result_ttl=0.05), SqliteAccounts(db)
    outcomes = Outcomes(store, accounts)
    key, _ = await accounts.create_key("team", credits=NANO)
    await open_job(store, accounts, key.account_id, "done")
    claim = await store.claim(["echo"], "w1")
    await store.complete(claim, answer(), Metrics(cost=0.03, input_tokens=1, output_tokens=2))
    await asyncio.sleep(0.1)  # the process was down for longer than results are kept
    assert await store.get("done") is None
    await store.sweep()
    assert await outcomes.reconcile(time.time() + RECONCILE_AFTER + 1) == 1
    entry = await accounts.request(key.account_id, "done")
    assert entry.status == "COMPLETED" and entry.cost == 30_000_000  # paid, not abandoned
    assert (await accounts.account("team")).balance == NANO - 30_000_000
    db.close()


async def test_reconcile_reaches_past_a_page_of_requests_still_queued(parts) -> None:
    store, accounts, outcomes = parts
    key, _ = await accounts.create_key("busy", credits=100 * NANO)
    for i in range(RECONCILE_BATCH + 20):  # legitimately waiting: nothing to settle
        await open_job(store, accounts, key.account_id, f"waiting{i}")
    await open_job(store, accounts, key.account_id, "done")
    claim = await store.claim(["echo"], "w1")  # the oldest waiting job runs
    await store.cancel(claim.job.id)
    await accounts.open_request(Opening(request_id="lost", account_id=key.account_id,
                                        key_id="key_x", model="echo", slug="echo",
                                        reserve=NANO // 10, reserve_note="test"))
    later = time.time() + 2 * RECONCILE_AFTER
    assert await outcomes.reconcile(later) == 2  # the cancelled one and the lost one
    assert (await accounts.request(key.account_id, "lost")).status == "FAILED"


async def test_reconcile_leaves_a_just_cancelled_running_job_to_its_worker(parts) -> None:
    store, accounts, outcomes = parts
    key, _ = await accounts.create_key("cancelled", credits=NANO)
    await open_job(store, accounts, key.account_id, "running")
    claim = await store.claim(["echo"], "w1")
    await store.cancel("running")
    await accounts._db.write(lambda conn: conn.execute(  # made long ago, cancelled just now
        "UPDATE requests SET created_at = created_at - ?", (2 * RECONCILE_AFTER,)))
    assert await outcomes.reconcile() == 0
    assert await store.record_usage(claim, Metrics(input_tokens=1, output_tokens=2,
                                                   cost=0.01))
    await outcomes.ended("running")
    entry = await accounts.request(key.account_id, "running")
    assert entry.status == "FAILED" and entry.cost == 10_000_000
