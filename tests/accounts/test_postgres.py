"""Accounts on PostgreSQL shared by several nodes: reservations never overdraw, a request is
settled once, a webhook is claimed by one sender; and the key tests of the SQLite backend,
run here on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from stratus._postgres import Postgres
from stratus.accounts import NANO, Opening, PostgresAccounts
from stratus.accounts.postgres import _webhooks
from stratus.errors import InsufficientCredits
from stratus.store import JobRecord, Metrics, Status
from tests.accounts.test_sqlite import (  # noqa: F401  (collected here, on PostgreSQL)
    test_chosen_key_value,
    test_keys_authenticate_to_their_account,
    test_unknown_and_revoked_keys,
)
from tests.conftest import answer

pytestmark = pytest.mark.anyio

URL = "http://8.8.8.8/hook"


@pytest.fixture
async def node(postgres_url: str) -> AsyncIterator[PostgresAccounts]:
    """A second node: its own pool on the database of ``accounts``."""
    pg = Postgres(postgres_url)
    await pg.open()
    yield PostgresAccounts(pg)
    await pg.close()


def opening(account_id: str, request_id: str, reserve: int,
            webhook: str | None = None) -> Opening:
    return Opening(request_id=request_id, account_id=account_id, key_id="key_x",
                   model="claude-3-haiku", slug="echo", reserve=reserve,
                   reserve_note="test", webhook_url=webhook)


def ended(request_id: str, cost: float, at: float | None = None) -> JobRecord:
    at = time.time() if at is None else at
    return JobRecord(
        id=request_id, account_id="", model="echo", requested_model="claude-3-haiku",
        status=Status.COMPLETED, request={}, created_at=at - 1, attempts=1,
        started_at=at - 0.5, completed_at=at, result=answer(),
        metrics=Metrics(cost=cost, input_tokens=3, output_tokens=5))


async def ledger(accounts: PostgresAccounts, account_id: str) -> list[tuple[str, int, int]]:
    async with accounts._pg.transaction() as conn:
        cur = await conn.execute(
            "SELECT kind, amount, balance_after FROM credit_ledger WHERE account_id = %s "
            "ORDER BY seq", (account_id,))
        return [(row["kind"], row["amount"], row["balance_after"])
                for row in await cur.fetchall()]


async def test_concurrent_reservations_on_many_connections(accounts: PostgresAccounts) -> None:
    reserve = 3 * NANO + 7  # balances beyond 2^31 nano-USD
    key, _ = await accounts.create_key("team", credits=5 * reserve)
    team = key.account_id

    async def one(i: int) -> bool:
        try:
            await accounts.open_request(opening(team, f"r{i}", reserve))
            return True
        except InsufficientCredits as exc:
            assert exc.extra["credits_required"] == reserve / NANO
            return False

    tasks = [asyncio.create_task(one(i)) for i in range(50)]
    admitted = await asyncio.gather(*tasks)
    assert sum(admitted) == 5
    assert accounts._pg.pool.get_stats()["pool_size"] > 1  # the calls ran side by side
    account = await accounts.account("team")
    assert (account.balance, account.reserved, account.available) == (5 * reserve,
                                                                      5 * reserve, 0)
    opened = {f"r{i}" for i, ok in enumerate(admitted) if ok}
    assert set(await accounts.open_requests(time.time() + 1, 100)) == opened
    # what was refused left no history
    for i, ok in enumerate(admitted):
        assert (await accounts.request(team, f"r{i}") is not None) == ok


async def test_concurrent_closes_charge_once(accounts: PostgresAccounts,
                                             node: PostgresAccounts) -> None:
    key, _ = await accounts.create_key("team", credits=100 * NANO)
    team = key.account_id
    ids = [f"r{i}" for i in range(20)]
    for rid in ids:
        await accounts.open_request(opening(team, rid, 2 * NANO, webhook=URL))
    costs = {rid: (i + 1) * 0.05 for i, rid in enumerate(ids)}
    closes = [close for rid in ids for close in (
        accounts.close_request(ended(rid, costs[rid]), "{}"),
        node.close_request(ended(rid, costs[rid]), "{}"))]
    queued = await asyncio.gather(*(asyncio.create_task(close) for close in closes))
    # each request queued its webhook once: exactly one of its two closers settled it
    assert [queued[2 * i] + queued[2 * i + 1] for i in range(len(ids))] == [1] * len(ids)
    charged = sum(round(cost * NANO) for cost in costs.values())
    account = await accounts.account("team")
    assert (account.balance, account.reserved) == (100 * NANO - charged, 0)
    lines = await ledger(accounts, team)
    charges = [line for line in lines if line[0] == "charge"]
    assert len(charges) == len(ids)
    assert -sum(amount for _, amount, _ in charges) == charged
    assert lines[-1][2] == account.balance
    for rid in ids:
        entry = await accounts.request(team, rid)
        assert entry is not None
        assert (entry.status, entry.cost, entry.webhook_status) == (
            "COMPLETED", round(costs[rid] * NANO), "pending")


async def queue_webhooks(accounts: PostgresAccounts, account: str, n: int,
                         ended_at: float) -> list[str]:
    key, _ = await accounts.create_key(account)
    rids = []
    for i in range(n):
        rid = uuid.uuid4().hex
        await accounts.open_request(opening(key.account_id, rid, 0, webhook=URL))
        await accounts.close_request(ended(rid, 0.0, ended_at + i * 0.001),
                                     json.dumps({"request_id": rid}))
        rids.append(rid)
    return rids


async def backlog(accounts: PostgresAccounts) -> dict[str, str]:
    """Three due webhooks of account a (the oldest), two of b, one of c: id → label."""
    now = time.time()
    ids: dict[str, str] = {}
    keys: dict[str, str] = {}
    for i, label in enumerate(["a1", "a2", "a3", "b1", "b2", "c1"]):
        if label[0] not in keys:
            keys[label[0]] = (await accounts.create_key(label[0]))[0].account_id
        rid = uuid.uuid4().hex
        await accounts.open_request(opening(keys[label[0]], rid, 0, webhook=URL))
        await accounts.close_request(ended(rid, 0.0, now - 60 + i), "{}")
        ids[rid] = label
    return ids


async def test_two_nodes_never_claim_one_delivery(accounts: PostgresAccounts,
                                                  node: PostgresAccounts) -> None:
    due = time.time() - 60
    rids = [rid for account in ("a", "b", "c")
            for rid in await queue_webhooks(accounts, account, 20, due)]

    async def sender(accounts: PostgresAccounts) -> list[str]:
        got: list[str] = []
        while batch := await accounts.claim_deliveries(time.time(), 3, 60.0, per_account=2):
            got += [delivery.request_id for delivery in batch]
        return got

    claims = await asyncio.gather(*(asyncio.create_task(sender(each))
                                    for each in (accounts, node, accounts, node)))
    every = [rid for claimed in claims for rid in claimed]
    assert sorted(every) == sorted(rids)  # each delivery claimed once, none left behind
    assert sum(1 for claimed in claims if claimed) > 1
    assert await accounts.claim_deliveries(time.time(), 100, 60.0) == []
    assert await accounts.next_delivery_at() == pytest.approx(time.time() + 60, abs=5)


async def test_claims_go_round_the_accounts(accounts: PostgresAccounts) -> None:
    labels = await backlog(accounts)
    claimed = await accounts.claim_deliveries(time.time(), 4, 40.0, per_account=2)
    assert [labels[d.request_id] for d in claimed] == ["a1", "b1", "c1", "a2"]
    rest = await accounts.claim_deliveries(time.time(), 10, 40.0, per_account=2)
    assert [labels[d.request_id] for d in rest] == ["a3", "b2"]  # claimed ones are leased
    assert {d.secret for d in claimed} == {
        (await accounts.account(name)).webhook_secret for name in "abc"}


async def test_running_deliveries_count_against_their_account(
        accounts: PostgresAccounts) -> None:
    labels = await backlog(accounts)
    first = await accounts.claim_deliveries(time.time(), 1, 0.0, per_account=2)
    assert [labels[d.request_id] for d in first] == ["a1"]
    claimed = await accounts.claim_deliveries(time.time(), 10, 40.0, per_account=2,
                                              running=first)
    assert [labels[d.request_id] for d in claimed] == ["a2", "b1", "c1", "b2"]
    # a and b run their share; c's only one runs
    assert await accounts.next_delivery_at(per_account=2, running=[*first, *claimed]) is None


async def test_a_claim_passes_over_what_another_node_is_claiming(
        accounts: PostgresAccounts, node: PostgresAccounts) -> None:
    labels = await backlog(accounts)
    async with accounts._pg.transaction() as conn:  # a claim not yet committed
        held = await _webhooks.claim(conn, time.time(), 2, 40.0, per_account=2)
        assert [labels[d.request_id] for d in held] == ["a1", "b1"]
        # the limit counts what this claim takes, not what it passes over
        claimed = await node.claim_deliveries(time.time(), 2, 40.0, per_account=2)
        assert [labels[d.request_id] for d in claimed] == ["c1", "a2"]
    rest = await node.claim_deliveries(time.time(), 10, 40.0)
    assert [labels[d.request_id] for d in rest] == ["a3", "b2"]  # the first one committed
    assert await accounts.claim_deliveries(time.time(), 10, 40.0) == []
