"""The credits ledger on every backend: reserve, settle once, never below zero."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from stratus._sqlite import SqliteDB
from stratus.accounts import NANO, Accounts, Opening, PostgresAccounts, SqliteAccounts
from stratus.errors import InsufficientCredits, InvalidRequest
from stratus.store import JobRecord, Metrics, Status
from tests.conftest import answer

pytestmark = pytest.mark.anyio


def opening(account_id: str, request_id: str, reserve: int, webhook: str | None = None
            ) -> Opening:
    return Opening(request_id=request_id, account_id=account_id, key_id="key_x",
                   model="claude-3-haiku", slug="echo", reserve=reserve,
                   reserve_note="test", webhook_url=webhook)


def ended(request_id: str, status: Status, cost: float = 0.0, **extra) -> JobRecord:
    now = time.time()
    return JobRecord(
        id=request_id, account_id="", model="echo", requested_model="claude-3-haiku",
        status=status, request={}, created_at=now - 1, attempts=1, started_at=now - 0.5,
        completed_at=now, result=answer() if status is Status.COMPLETED else None,
        metrics=Metrics(cost=cost, input_tokens=3, output_tokens=5)
        if status is Status.COMPLETED else None, **extra)


async def ledger_lines(accounts: Accounts) -> list[tuple]:
    """``(kind, amount, balance_after, note)`` of every ledger line, oldest first."""
    sql = "SELECT kind, amount, balance_after, note FROM credit_ledger ORDER BY seq"
    if isinstance(accounts, PostgresAccounts):
        async with accounts._pg.transaction() as conn:
            cur = await conn.execute(sql)
            return [tuple(row.values()) for row in await cur.fetchall()]
    assert isinstance(accounts, SqliteAccounts)
    return await accounts._db.read(lambda conn: [tuple(row) for row in conn.execute(sql)])


async def test_reserve_settle_release(accounts) -> None:
    key, _ = await accounts.create_key("team", credits=10 * NANO)
    team = key.account_id
    await accounts.open_request(opening(team, "r1", 4 * NANO))
    await accounts.open_request(opening(team, "r2", 4 * NANO))
    account = await accounts.account("team")
    assert (account.balance, account.reserved, account.available) == (10 * NANO, 8 * NANO,
                                                                       2 * NANO)
    with pytest.raises(InsufficientCredits, match=r"up to \$4.000000 .* \$2.000000 available"):
        await accounts.open_request(opening(team, "r3", 4 * NANO))
    # r1 cost 1.5 of its 4; r2 failed: released in full
    assert not await accounts.close_request(ended("r1", Status.COMPLETED, 1.5), "{}")
    await accounts.close_request(ended("r2", Status.FAILED, error="x", error_type="engine"),
                                 "{}")
    account = await accounts.account("team")
    assert (account.balance, account.reserved) == (int(8.5 * NANO), 0)
    # a second close (a retried worker, a sweep) charges nothing more
    await accounts.close_request(ended("r1", Status.COMPLETED, 1.5), "{}")
    assert (await accounts.account("team")).balance == int(8.5 * NANO)
    r1 = await accounts.request(team, "r1")
    assert (r1.status, r1.cost, r1.input_tokens, r1.output_tokens) == (
        "COMPLETED", int(1.5 * NANO), 3, 5)
    assert (await accounts.request(team, "r2")).cost == 0


async def test_concurrent_reservations_never_overdraw(accounts) -> None:
    key, _ = await accounts.create_key("team", credits=5 * NANO)

    async def one(i: int) -> bool:
        try:
            await accounts.open_request(opening(key.account_id, f"r{i}", NANO))
            return True
        except InsufficientCredits:
            return False

    admitted = await asyncio.gather(*(one(i) for i in range(20)))
    assert sum(admitted) == 5
    for i, ok in enumerate(admitted):
        if ok:  # each costs more than the balance left: charges stop at zero
            await accounts.close_request(ended(f"r{i}", Status.COMPLETED, 2.0), "{}")
    account = await accounts.account("team")
    assert account.balance == 0 and account.reserved == 0


async def test_discard_and_abandon_release(accounts) -> None:
    key, _ = await accounts.create_key("team", credits=NANO)
    await accounts.open_request(opening(key.account_id, "r1", NANO))
    await accounts.discard_request("r1")
    assert await accounts.request(key.account_id, "r1") is None
    await accounts.open_request(opening(key.account_id, "r2", NANO))
    assert await accounts.open_requests(time.time() + 1, 10) == ["r2"]
    assert await accounts.abandon_request("r2", "lost")
    assert not await accounts.abandon_request("r2", "lost")
    account = await accounts.account("team")
    assert (account.balance, account.reserved) == (NANO, 0)
    assert (await accounts.request(key.account_id, "r2")).status == "FAILED"


async def test_grants_and_settings_are_in_the_ledger(accounts) -> None:
    await accounts.create_key("free")  # unlimited
    with pytest.raises(InvalidRequest, match="unlimited credits"):
        await accounts.add_credits("free", NANO)
    await accounts.set_credits("free", 2 * NANO, "plan")
    await accounts.add_credits("free", 3 * NANO, "top-up")
    with pytest.raises(InvalidRequest, match="below zero"):
        await accounts.add_credits("free", -6 * NANO)
    assert (await accounts.account("free")).balance == 5 * NANO
    assert await ledger_lines(accounts) == [
        ("set", None, None, "account created"), ("set", 2 * NANO, 2 * NANO, "plan"),
        ("grant", 3 * NANO, 5 * NANO, "top-up")]


async def test_an_older_database_gains_the_new_columns(tmp_path: Path) -> None:
    """SQLite only: a PostgreSQL database gains its columns by numbered migrations."""
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.executescript("""
            CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                                   created_at REAL NOT NULL);
            CREATE TABLE api_keys (id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
                hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, name TEXT NOT NULL,
                created_at REAL NOT NULL, revoked_at REAL);
            INSERT INTO accounts VALUES ('acct_1', 'default', 0);
        """)
    db = SqliteDB(tmp_path / "old.db")
    try:
        old = await SqliteAccounts(db).account("default")
        assert old.balance is None and old.webhook_secret.startswith("whsec_")
    finally:
        db.close()
