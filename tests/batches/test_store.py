"""What every database does for Message Batches: a batch admitted with its requests' credits
and history in one transaction, its counts read from its jobs, paging, cancel, the keeper's
queries, results in order, delete and retention. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratus import backends
from stratus.accounts import Opening, to_nano
from stratus.backends import Database
from stratus.batches import NewBatch
from stratus.config import Config, DatabaseConfig, ModelConfig, ServerConfig
from stratus.errors import InsufficientCredits
from stratus.store import ErrorType, Metrics, NewJob, Priority, Status
from tests.conftest import answer

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (f"sqlite:///{tmp_path / 'b.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    config = Config(server=ServerConfig(data_dir=tmp_path), database=DatabaseConfig(url=url),
                    models=(ModelConfig(slug="m"),))
    database = backends.database(config)
    await database.open()
    yield database
    await database.close()


async def _account(db: Database, name: str, usd: float | None = 10.0) -> tuple[str, str]:
    key, _ = await db.accounts.create_key(name, credits=None if usd is None else to_nano(usd))
    return key.account_id, key.id


async def _admit(db: Database, batch_id: str, account: tuple[str, str], n: int, *,
                 reserve: float = 0.01, retention: float = 3600.0,
                 expire_after: float = 3600.0, blocked: tuple[int, ...] = ()) -> NewBatch:
    account_id, key_id = account
    batch = NewBatch(id=batch_id, account_id=account_id, key_id=key_id, total=n,
                     expire_after=expire_after, retention=retention)
    ids = [f"{batch_id}-{i}" for i in range(n)]
    openings = [Opening(request_id=rid, account_id=account_id, key_id=key_id, model="m",
                        slug="m", reserve=0 if i in blocked else to_nano(reserve),
                        reserve_note="") for i, rid in enumerate(ids)]
    jobs = [NewJob(id=rid, account_id=account_id, model="m", requested_model="m",
                   request={"i": i}, priority=Priority.BATCH, retain=retention,
                   batch_id=batch_id, custom_id=f"c{i}",
                   blocked="bad" if i in blocked else None,
                   blocked_type=ErrorType.INVALID.value)
            for i, rid in enumerate(ids)]
    await db.admit_batch(batch, openings, jobs, "the batch")
    return batch


async def test_a_batch_holds_its_credits_and_history_with_its_jobs(db: Database) -> None:
    account = await _account(db, "a")
    await _admit(db, "B1", account, 5, reserve=1.0, blocked=(4,))
    acct = await db.accounts.account("a")
    assert acct.reserved == to_nano(4.0)
    batch = await db.batches.get(account[0], "B1")
    assert batch is not None and batch.total == 5
    assert batch.counts.open == 4 and batch.counts.errored == 1
    assert batch.processing_status == "in_progress" and batch.ended_at is None
    assert await db.store.queued("m") == 4
    assert (await db.accounts.request(account[0], "B1-0")) is not None


async def test_a_batch_the_account_cannot_pay_for_leaves_nothing(db: Database) -> None:
    account = await _account(db, "poor", usd=1.0)
    with pytest.raises(InsufficientCredits):
        await _admit(db, "B1", account, 3, reserve=0.5)
    assert await db.batches.get(account[0], "B1") is None
    assert await db.store.get("B1-0") is None
    assert await db.accounts.request(account[0], "B1-0") is None
    assert (await db.accounts.account("poor")).reserved == 0


async def test_counts_follow_the_jobs_to_the_end(db: Database) -> None:
    account = await _account(db, "a")
    await _admit(db, "B1", account, 4)
    claim = await db.store.claim(["m"], "w")
    await db.store.complete(claim, answer("x"), Metrics())
    claim = await db.store.claim(["m"], "w")
    await db.store.fail(claim, "boom", ErrorType.ENGINE.value)
    ended = await db.store.end_queued(["B1-2"], "gone", ErrorType.EXPIRED.value)
    assert [r.id for r in ended] == ["B1-2"]
    await db.store.cancel("B1-3")
    batch = await db.batches.get(account[0], "B1")
    assert batch is not None
    assert (batch.counts.succeeded, batch.counts.errored, batch.counts.expired,
            batch.counts.canceled, batch.counts.open) == (1, 1, 1, 1, 0)
    assert batch.processing_status == "ended"
    assert batch.ended_at is not None and batch.ended_at >= batch.created_at
    rows = await db.batches.results("B1", 0, 10)
    assert [r.custom_id for r in rows] == ["c0", "c1", "c2", "c3"]
    assert rows[0].status is Status.COMPLETED and rows[0].result is not None
    assert [r.error_type for r in rows[1:]] == ["engine_error", "expired", "cancelled"]
    assert [r.custom_id for r in await db.batches.results("B1", rows[1].seq, 2)] == ["c2", "c3"]


async def test_pages_are_newest_first_and_per_account(db: Database) -> None:
    mine, other = await _account(db, "a"), await _account(db, "b")
    for i in range(5):
        await _admit(db, f"B{i}", mine, 1)
    await _admit(db, "X", other, 1)
    page, more = await db.batches.page(mine[0], 2)
    assert [b.id for b in page] == ["B4", "B3"] and more
    page, more = await db.batches.page(mine[0], 2, after_id="B3")
    assert [b.id for b in page] == ["B2", "B1"] and more
    page, more = await db.batches.page(mine[0], 2, after_id="B1")
    assert [b.id for b in page] == ["B0"] and not more
    page, more = await db.batches.page(mine[0], 2, before_id="B1")
    assert [b.id for b in page] == ["B3", "B2"] and more
    assert await db.batches.get(mine[0], "X") is None


async def test_cancel_and_expiry_are_due_until_nothing_is_left(db: Database) -> None:
    account = await _account(db, "a")
    await _admit(db, "C", account, 3)
    await _admit(db, "E", account, 2, expire_after=0.01)
    await _admit(db, "N", account, 2)
    await asyncio.sleep(0.05)
    assert await db.batches.begin_cancel(account[0], "nope") is None
    cancelled = await db.batches.begin_cancel(account[0], "C")
    assert cancelled is not None and cancelled.processing_status == "canceling"
    first = cancelled.cancel_initiated_at
    again = await db.batches.begin_cancel(account[0], "C")
    assert again is not None and again.cancel_initiated_at == first
    due = {d.id: d.canceling for d in await db.batches.due()}
    assert due == {"C": True, "E": False}
    assert await db.batches.job_ids("C", (Status.QUEUED,), 2) == ["C-0", "C-1"]
    await db.store.end_queued(await db.batches.job_ids("C", (Status.QUEUED,), 10), "x",
                              ErrorType.CANCELLED.value)
    await db.store.end_queued(await db.batches.job_ids("E", (Status.QUEUED,), 10), "x",
                              ErrorType.EXPIRED.value)
    assert await db.batches.due() == []


async def test_delete_and_retention_take_the_jobs_with_them(db: Database) -> None:
    account = await _account(db, "a")
    await _admit(db, "D", account, 2)
    await _admit(db, "R", account, 2, retention=0.05)
    await _admit(db, "K", account, 1)
    await asyncio.sleep(0.1)
    assert await db.batches.get(account[0], "R") is None  # past its retention
    assert await db.batches.purge() == 1
    assert await db.store.get("R-0", expired=True) is None
    assert await db.batches.delete(account[0], "D")
    assert not await db.batches.delete(account[0], "D")
    assert await db.store.get("D-0", expired=True) is None
    assert await db.batches.get(account[0], "K") is not None
