"""Usage sums and the credits ledger's pages, on every backend."""

from __future__ import annotations

import time

import pytest

from stratus.accounts import NANO, Accounts, Opening, PostgresAccounts, SqliteAccounts, UsageRow
from stratus.store import Status
from tests.accounts.test_credits import ended

pytestmark = pytest.mark.anyio

DAY = 86400


def opening(account_id: str, request_id: str, slug: str) -> Opening:
    return Opening(request_id=request_id, account_id=account_id, key_id="key_x", model=slug,
                   slug=slug, reserve=10 * NANO, reserve_note="test")


async def created_at(accounts: Accounts, request_id: str, at: float) -> None:
    """Move a request's creation time (the backends stamp it with their own clock)."""
    if isinstance(accounts, PostgresAccounts):
        async with accounts._pg.transaction() as conn:
            await conn.execute("UPDATE requests SET created_at = %s WHERE id = %s",
                               (at, request_id))
        return
    assert isinstance(accounts, SqliteAccounts)
    await accounts._db.write(lambda conn: conn.execute(
        "UPDATE requests SET created_at = ? WHERE id = ?", (at, request_id)))


async def test_usage_sums_requests_per_utc_day_and_model(accounts) -> None:
    key, _ = await accounts.create_key("team")
    other, _ = await accounts.create_key("other")
    team = key.account_id
    today = int(time.time() // DAY)
    placed = [("r1", "echo", today * DAY + 10), ("r2", "echo", today * DAY + 20),
              ("r3", "big", (today - 1) * DAY + DAY - 1), ("r4", "echo", today * DAY + 30),
              ("r5", "big", (today - 3) * DAY)]
    for request_id, slug, at in placed:
        await accounts.open_request(opening(team, request_id, slug))
        await created_at(accounts, request_id, at)
    await accounts.open_request(opening(other.account_id, "o1", "echo"))  # not the team's
    await accounts.close_request(ended("r1", Status.COMPLETED, 1.5), "{}")
    await accounts.close_request(ended("r2", Status.FAILED, error="x", error_type="engine"),
                                 "{}")
    await accounts.close_request(ended("r3", Status.COMPLETED, 0.25), "{}")
    await accounts.close_request(ended("r5", Status.COMPLETED, 4.0), "{}")
    # r4 is still open: counted, with nothing charged yet
    since = (today - 1) * DAY
    assert await accounts.usage(team, since) == [
        UsageRow(day=today - 1, slug="big", requests=1, completed=1, failed=0,
                 input_tokens=3, output_tokens=5, cost=NANO // 4),
        UsageRow(day=today, slug="echo", requests=3, completed=1, failed=1, input_tokens=3,
                 output_tokens=5, cost=3 * NANO // 2),
    ]
    assert [(r.day, r.slug) for r in await accounts.usage(team, today * DAY)] == [
        (today, "echo")]
    assert [(r.day, r.slug) for r in await accounts.usage(team, 0, today * DAY)] == [
        (today - 3, "big"), (today - 1, "big")]
    assert await accounts.usage(team, (today + 1) * DAY) == []
    assert [r.requests for r in await accounts.usage(other.account_id, 0)] == [1]


async def test_the_ledger_pages_newest_first(accounts) -> None:
    key, _ = await accounts.create_key("team", credits=10 * NANO)
    await accounts.create_key("other", credits=NANO)  # its lines are not the team's
    team = key.account_id
    await accounts.add_credits("team", 2 * NANO, "top-up")
    await accounts.open_request(opening(team, "r1", "echo"))
    await accounts.close_request(ended("r1", Status.COMPLETED, 0.5), "{}")
    await accounts.set_credits("team", None, "unlimited now")
    first, more = await accounts.ledger(team, 2)
    assert more
    assert [(line.kind, line.amount, line.balance_after, line.note, line.request_id)
            for line in first] == [
        ("set", None, None, "unlimited now", None),
        ("charge", -NANO // 2, 23 * NANO // 2, "", "r1")]
    rest, more = await accounts.ledger(team, 10, before=first[-1].id)
    assert not more
    assert [(line.kind, line.amount, line.balance_after, line.note) for line in rest] == [
        ("grant", 2 * NANO, 12 * NANO, "top-up"),
        ("set", 10 * NANO, 10 * NANO, "account created")]
    lines = first + rest
    assert all(line.account_id == team for line in lines)
    assert [line.id for line in lines] == sorted((line.id for line in lines), reverse=True)
    assert lines[0].created_at >= lines[-1].created_at > 0
    assert await accounts.ledger(team, 10, before=lines[-1].id) == ([], False)
