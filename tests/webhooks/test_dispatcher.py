"""The webhook sender against real receivers: what it reads, how long an attempt may take,
where it connects, how it shares its slots, and that every attempt is recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from stratus._sqlite import SqliteDB
from stratus.accounts import Delivery, SqliteAccounts
from stratus.config import WebhookConfig
from stratus.webhooks import Dispatcher
from tests.webhooks._queue import Queue
from tests.webhooks._receivers import WAIT, Answer, Receiver, drip, hold_then_ok, huge_body, ok

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(dispatcher: Dispatcher, queue: Queue) -> AsyncIterator[Dispatcher]:
    queue.dispatcher = dispatcher
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()


@asynccontextmanager
async def receiving(answer: Answer) -> AsyncIterator[Receiver]:
    receiver = await Receiver(answer).start()
    try:
        yield receiver
    finally:
        await receiver.close()


def config(**settings: object) -> WebhookConfig:
    return WebhookConfig(**{"allow_private": True, "initial_backoff": 0.1, **settings})


class Resolver:
    """A DNS stand-in that gives its answers in turn (the last one from then on)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


# -- what is read ---------------------------------------------------------------------------
async def test_a_huge_answer_is_not_read(queue: Queue) -> None:
    async with receiving(huge_body) as receiver, \
            running(Dispatcher(queue.accounts, config(timeout=5)), queue):
        rid = await queue.add(receiver.url)
        attempts = await queue.settled(rid, "delivered", "failed")
        # the status was enough: the sender hung up long before the body's end
        await asyncio.wait_for(receiver.cut_short.wait(), WAIT)
    assert [(a.status_code, a.error) for a in attempts] == [(200, None)]


# -- how long an attempt may take -----------------------------------------------------------
async def test_a_dripping_receiver_is_cut_off_at_the_deadline(queue: Queue) -> None:
    cfg = config(timeout=1, retry_window=5)
    async with receiving(drip) as receiver, running(Dispatcher(queue.accounts, cfg), queue):
        rid = await queue.add(receiver.url)
        attempts = await queue.settled(rid, "failed")
    assert len(attempts) >= 2
    for attempt in attempts:
        assert attempt.status_code is None
        assert attempt.error == "no answer within the 1 s deadline"
        assert attempt.duration_ms < 5000  # the deadline is 1 s; 5 s is a generous bound
    assert receiver.max_open == 1  # attempts of one delivery never overlap


class ShortLeases(SqliteAccounts):
    """Claims that lapse at once, as if an attempt outlived its lease."""

    def __init__(self, db: SqliteDB) -> None:
        super().__init__(db)
        self.claims: list[list[str]] = []

    async def claim_deliveries(self, now: float, limit: int, lease: float,
                               **kwargs: Any) -> list[Delivery]:
        got = await super().claim_deliveries(now, limit, 0.0, **kwargs)
        self.claims.append([d.request_id for d in got])
        return got


async def test_a_delivery_in_flight_is_not_sent_again(db: SqliteDB) -> None:
    accounts = ShortLeases(db)
    queue = Queue(accounts)
    dispatcher = Dispatcher(accounts, config(timeout=30))
    async with receiving(hold_then_ok) as receiver, running(dispatcher, queue):
        rid = await queue.add(receiver.url)
        await receiver.wait_for_requests(1)
        claimed = len(accounts.claims)
        deadline = time.monotonic() + WAIT
        while len(accounts.claims) < claimed + 3:  # look at the queue again, three times
            assert time.monotonic() < deadline
            dispatcher.wake()
            await asyncio.sleep(0.05)
        assert accounts.claims[claimed:] == [[]] * (len(accounts.claims) - claimed)
        assert len(receiver.requests) == 1 and receiver.max_open == 1
        receiver.released.set()
        attempts = await queue.settled(rid, "delivered")
    assert [a.attempt for a in attempts] == [1]


# -- sharing the slots ----------------------------------------------------------------------
async def test_a_slow_account_does_not_hold_up_another(queue: Queue) -> None:
    # four slots: an account's share is one of them
    dispatcher = Dispatcher(queue.accounts, config(timeout=60), concurrency=4)
    async with receiving(hold_then_ok) as slow, receiving(ok) as fast, running(dispatcher, queue):
        now = time.time()
        held = [await queue.add(slow.url, "slow", ended=now - 10 + i) for i in range(6)]
        rid = await queue.add(fast.url, "fast", ended=now)
        # the fast account's webhook goes out while the slow account's are all still held
        attempts = await queue.settled(rid, "delivered")
        assert [a.status_code for a in attempts] == [200]
        # the slow account may use slots nobody else wants, but one share stays free
        assert slow.max_open <= 3
        slow.released.set()
        for one in held:
            await queue.settled(one, "delivered")
    assert len(slow.requests) == 6


async def test_a_lone_account_uses_the_slots_nobody_else_wants(queue: Queue) -> None:
    dispatcher = Dispatcher(queue.accounts, config(timeout=60), concurrency=4)
    async with receiving(hold_then_ok) as slow, running(dispatcher, queue):
        now = time.time()
        held = [await queue.add(slow.url, "alone", ended=now - 10 + i) for i in range(6)]
        await slow.wait_for_requests(3)  # more than its share of one slot
        slow.released.set()
        for one in held:
            await queue.settled(one, "delivered")
    assert slow.max_open == 3 and len(slow.requests) == 6


# -- where it connects ----------------------------------------------------------------------
async def test_the_attempt_connects_to_the_address_it_resolved(queue: Queue) -> None:
    # 127.0.0.2 refuses (the receiver listens on 127.0.0.1 only); a second lookup would
    # answer 192.0.2.1, where nothing answers at all
    resolver = Resolver(["127.0.0.2", "127.0.0.1"], ["192.0.2.1"])
    dispatcher = Dispatcher(queue.accounts, config(timeout=5), resolver=resolver)
    async with receiving(ok) as receiver, running(dispatcher, queue):
        rid = await queue.add(f"http://hook.rebind.test:{receiver.port}/hook")
        attempts = await queue.settled(rid, "delivered", "failed")
    assert [(a.status_code, a.error) for a in attempts] == [(200, None)]
    assert resolver.asked == [("hook.rebind.test", receiver.port)]  # once, by us
    assert receiver.requests[0]["host"] == f"hook.rebind.test:{receiver.port}"


async def test_rebinding_to_a_private_address_is_refused_on_the_next_attempt(
        queue: Queue) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503)

    resolver = Resolver(["93.184.216.34"], ["127.0.0.1"])
    dispatcher = Dispatcher(queue.accounts, config(allow_private=False, timeout=5),
                            resolver=resolver, transport=httpx.MockTransport(answer))
    async with running(dispatcher, queue):
        rid = await queue.add("https://hook.example/path?x=1")
        attempts = await queue.settled(rid, "failed")
    assert len(seen) == 1  # the second attempt never left
    sent = seen[0]
    assert sent.url.host == "93.184.216.34" and sent.url.scheme == "https"
    assert sent.url.raw_path == b"/path?x=1"
    assert sent.headers["host"] == "hook.example"
    assert sent.extensions["sni_hostname"] == "hook.example"
    assert [a.status_code for a in attempts] == [503, None]
    assert "non-public address" in attempts[1].error and "127.0.0.1" not in attempts[1].error
    assert len(resolver.asked) == 2  # checked again on the second attempt


async def test_proxy_settings_of_the_environment_are_ignored(
        queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with receiving(ok) as receiver, running(Dispatcher(queue.accounts, config()), queue):
        rid = await queue.add(receiver.url)
        attempts = await queue.settled(rid, "delivered", "failed")
    assert [(a.status_code, a.error) for a in attempts] == [(200, None)]


# -- every attempt is recorded --------------------------------------------------------------
async def test_an_unexpected_error_is_recorded_and_retried_until_the_window_ends(
        queue: Queue) -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("receiver exploded")

    cfg = config(initial_backoff=0.05, retry_window=3)
    dispatcher = Dispatcher(queue.accounts, cfg, transport=httpx.MockTransport(explode))
    async with running(dispatcher, queue):
        rid = await queue.add("http://8.8.8.8/hook")
        attempts = await queue.settled(rid, "failed")
    assert len(attempts) >= 2
    assert all(a.error == "unexpected error: RuntimeError: receiver exploded"
               for a in attempts)


async def test_a_stored_url_that_cannot_be_sent_ends_the_delivery(queue: Queue) -> None:
    async with running(Dispatcher(queue.accounts, config()), queue):
        rid = await queue.add("http://example.com/\x01")  # queued before URLs were checked
        attempts = await queue.settled(rid, "failed")
    assert len(attempts) == 1 and attempts[0].status_code is None
    assert "control character" in attempts[0].error
