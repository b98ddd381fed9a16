"""Claiming due webhooks: round the accounts in turn, within each account's share, never a
delivery the sender is still running."""

from __future__ import annotations

import time

import pytest

from tests.webhooks._queue import Queue

pytestmark = pytest.mark.anyio

URL = "http://8.8.8.8/hook"


async def backlog(queue: Queue) -> dict[str, str]:
    """Three due webhooks of account a (the oldest), two of b, one of c: id → label."""
    now = time.time()
    labels = {}
    for i, label in enumerate(["a1", "a2", "a3", "b1", "b2", "c1"]):
        rid = await queue.add(URL, account=label[0], ended=now - 60 + i)
        labels[rid] = label
    return labels


async def test_claims_go_round_the_accounts(queue: Queue) -> None:
    labels = await backlog(queue)
    claimed = await queue.accounts.claim_deliveries(time.time(), 4, 40.0, per_account=2)
    assert [labels[d.request_id] for d in claimed] == ["a1", "b1", "c1", "a2"]
    rest = await queue.accounts.claim_deliveries(time.time(), 10, 40.0, per_account=2)
    assert [labels[d.request_id] for d in rest] == ["a3", "b2"]  # claimed ones are leased


async def test_running_deliveries_count_against_their_account(queue: Queue) -> None:
    labels = await backlog(queue)
    by_label = {label: rid for rid, label in labels.items()}
    first = await queue.accounts.claim_deliveries(time.time(), 1, 0.0, per_account=2)
    assert [labels[d.request_id] for d in first] == ["a1"]
    # its lease has lapsed but the sender still runs it: not claimed again, and a has one
    # turn left
    claimed = await queue.accounts.claim_deliveries(time.time(), 10, 40.0, per_account=2,
                                                     running=first)
    assert [labels[d.request_id] for d in claimed] == ["a2", "b1", "c1", "b2"]
    assert by_label["a1"] not in {d.request_id for d in claimed}


async def test_next_due_time_skips_what_cannot_be_claimed(queue: Queue) -> None:
    now = time.time()
    rid = await queue.add(URL, account="a", ended=now - 5)
    running = await queue.accounts.claim_deliveries(now, 1, 0.0, per_account=1)
    assert [d.request_id for d in running] == [rid]
    await queue.add(URL, account="a", ended=now + 30)
    assert await queue.accounts.next_delivery_at() == pytest.approx(now)
    # a's only slot is taken by the running one: nothing else of a can be claimed
    assert await queue.accounts.next_delivery_at(per_account=1, running=running) is None
    assert await queue.accounts.next_delivery_at(
        per_account=2, running=running) == pytest.approx(now + 30)
