"""Sends webhooks: signed, retried with backoff, never on a worker's path.

A request's webhook is queued in the same transaction that settles the request, so it is
sent **at least once**: a delivery in flight when the process dies is sent again after its
lease. Every attempt of a request carries the same ``webhook-id``. A 2xx answer delivers
it; anything else (another status, a refused connection, no answer within ``timeout``, or
any other error) is retried after ``initial_backoff`` seconds, doubling up to
``max_backoff``, each wait jittered by ±20%, until ``retry_window`` seconds after the
request ended. Redirects are not followed.

Each attempt resolves the host once, checks every address and connects to a checked one
(see ``stratus.outbound``), and must be over within ``timeout`` seconds in all: resolving,
connecting, sending and reading the answer's status. Its claim's lease outlasts that
deadline, and a delivery this sender is still running is never claimed again, so two
attempts of one delivery never run at once. Slots are shared between accounts: claims go
round the accounts in turn and an account holds at most ``per_account`` of them, except that
slots nobody else wants are used too, keeping one share free for the next account.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable

import httpx

from stratus.accounts import Accounts, Delivery, DeliveryAttempt
from stratus.config import WebhookConfig
from stratus.errors import InvalidRequest, describe
from stratus.outbound import Resolver, Unresolved, make_client, post, resolve_target
from stratus.webhooks._signing import headers, webhook_id

log = logging.getLogger("stratus.webhooks")

IDLE_CHECK = 60.0  # seconds between looks at the queue when nothing wakes the sender
LEASE_MARGIN = 30.0  # seconds a claim outlasts its attempt's deadline (to record the attempt)


class Dispatcher:
    def __init__(self, accounts: Accounts, config: WebhookConfig, *,
                 concurrency: int = 16, per_account: int | None = None,
                 resolver: Resolver | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 idle_check: float = IDLE_CHECK,
                 on_attempt: Callable[[str], None] = lambda outcome: None) -> None:
        """``idle_check``: seconds between looks at the queue when nothing wakes the sender
        (short where other processes queue webhooks too); ``on_attempt``: told each
        attempt's outcome (delivered, failed, given_up)."""
        self._on_attempt = on_attempt
        self._accounts = accounts
        self._idle_check = idle_check
        self._config = config
        self._concurrency = concurrency
        self._per_account = per_account or max(1, concurrency // 4)
        self._resolver = resolver
        self._transport = transport
        self._wake = asyncio.Event()
        self._running: dict[str, Delivery] = {}  # by request id
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._client = make_client(self._config.timeout, self._transport)
        self._loop_task = asyncio.create_task(self._loop(), name="webhook-dispatcher")

    def wake(self) -> None:
        """A webhook was queued: look at the queue now."""
        self._wake.set()

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                self._wake.clear()
                await self._claim()
                await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatcher error; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def _claim(self) -> None:
        free = self._concurrency - len(self._running)
        if free <= 0:
            return
        lease = self._config.timeout + LEASE_MARGIN
        due = await self._accounts.claim_deliveries(
            time.time(), free, lease, per_account=self._per_account,
            running=list(self._running.values()))
        spare = self._spare(len(due))
        if len(due) < free and spare > 0:  # no other account is waiting: use idle slots
            due += await self._accounts.claim_deliveries(
                time.time(), min(spare, free - len(due)), lease,
                running=[*self._running.values(), *due])
        for delivery in due:
            if delivery.request_id in self._running:
                continue  # still being sent: its own attempt records it
            self._running[delivery.request_id] = delivery
            task = asyncio.create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, delivery.request_id))

    async def _idle(self) -> None:
        """Wait for a wake-up (a new webhook, a finished attempt) or the next due time."""
        if len(self._running) >= self._concurrency:
            await self._wake.wait()
            return
        next_at = await self._accounts.next_delivery_at(
            per_account=None if self._spare(0) > 0 else self._per_account,
            running=list(self._running.values()))
        wait = self._idle_check if next_at is None else next_at - time.time()
        # asyncio.timeout, not wait_for: wait_for can swallow a cancellation (stop) that
        # arrives as the wake-up does, and the loop would then never end
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(max(wait, 0.0), self._idle_check)):
                await self._wake.wait()

    def _spare(self, claiming: int) -> int:
        """Slots beyond the per-account shares that one account may use while no other
        waits: all but one share, which stays free for the next account that has one."""
        return self._concurrency - self._per_account - len(self._running) - claiming

    def _done(self, request_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running.pop(request_id, None)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            # the attempt could not be recorded: its lease lapses and it is tried again
            log.error("webhook delivery failed unexpectedly", exc_info=task.exception())

    async def _deliver(self, delivery: Delivery) -> None:
        attempt = delivery.attempts + 1
        started = time.time()
        status_code, error, retry = await self._attempt(delivery)
        delivered = error is None
        now = time.time()
        next_at = None if delivered or not retry else self._next_attempt(delivery, attempt, now)
        record = DeliveryAttempt(attempt=attempt, at=started, url=delivery.url,
                                 status_code=status_code, error=error,
                                 duration_ms=round((now - started) * 1000, 3))
        await self._accounts.record_delivery(delivery, record, next_at, delivered)
        self._on_attempt("delivered" if delivered else "failed" if next_at else "given_up")
        if not delivered:
            log.info("webhook for %s attempt %d failed: %s%s", delivery.request_id, attempt,
                     error, "" if next_at else "; giving up")

    async def _attempt(self, delivery: Delivery) -> tuple[int | None, str | None, bool]:
        """One send: (status code, error or None, whether to retry after an error)."""
        try:
            async with asyncio.timeout(self._config.timeout):
                status_code = await self._send(delivery)
        except Unresolved as exc:
            return None, exc.message, True
        except InvalidRequest as exc:
            return None, exc.message, False
        except TimeoutError:
            return None, f"no answer within the {self._config.timeout:g} s deadline", True
        except httpx.HTTPError as exc:
            return None, describe(exc), True
        except Exception as exc:
            log.exception("webhook for %s: unexpected error", delivery.request_id)
            return None, f"unexpected error: {describe(exc)}", True
        if not 200 <= status_code < 300:
            return status_code, f"the receiver answered HTTP {status_code}", True
        return status_code, None, True

    async def _send(self, delivery: Delivery) -> int:
        target = await resolve_target(delivery.url, allow_private=self._config.allow_private,
                                      resolver=self._resolver)
        body = delivery.payload.encode()
        sent = headers(delivery.secret, webhook_id(delivery.request_id), int(time.time()), body)
        assert self._client is not None
        return await post(self._client, target, body, sent)

    def _next_attempt(self, delivery: Delivery, attempt: int, now: float) -> float | None:
        cfg = self._config
        delay = min(cfg.initial_backoff * 2 ** (attempt - 1), cfg.max_backoff)
        at = now + delay * random.uniform(0.8, 1.2)
        return at if at - delivery.first_at <= cfg.retry_window else None
