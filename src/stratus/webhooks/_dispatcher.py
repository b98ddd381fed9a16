"""Sends webhooks: signed, retried with backoff, never on a worker's path.

A request's webhook is queued in the same transaction that settles the request, so it is
sent **at least once**: a delivery in flight when the process dies is sent again after its
lease. Every attempt of a request carries the same ``webhook-id``. A 2xx answer delivers
it; anything else (another status, a refused connection, a timeout) is retried after
``initial_backoff`` seconds, doubling up to ``max_backoff``, each wait jittered by ±20%,
until ``retry_window`` seconds after the request ended. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import httpx

from stratus.accounts import Accounts, Delivery, DeliveryAttempt
from stratus.config import WebhookConfig
from stratus.errors import InvalidRequest
from stratus.webhooks._address import check_url
from stratus.webhooks._signing import headers, webhook_id

log = logging.getLogger("stratus.webhooks")

IDLE_CHECK = 60.0  # seconds between looks at the queue when nothing wakes the sender


class Dispatcher:
    def __init__(self, accounts: Accounts, config: WebhookConfig, *,
                 concurrency: int = 16) -> None:
        self._accounts = accounts
        self._config = config
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._config.timeout, follow_redirects=False)
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
                free = self._concurrency - len(self._tasks)
                due = await self._accounts.claim_deliveries(
                    time.time(), free, self._config.timeout + 30) if free else []
                for delivery in due:
                    task = asyncio.create_task(self._deliver(delivery))
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                if due and len(due) == free:
                    await self._wake.wait()  # every slot busy: a finished one wakes us
                    continue
                next_at = await self._accounts.next_delivery_at()
                wait = IDLE_CHECK if next_at is None else next_at - time.time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(max(wait, 0.0), IDLE_CHECK))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatcher error; retrying in 1 s")
                await asyncio.sleep(1.0)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            # its lease lapses and the delivery is tried again
            log.error("webhook delivery failed unexpectedly", exc_info=task.exception())

    async def _deliver(self, delivery: Delivery) -> None:
        attempt = delivery.attempts + 1
        started = time.time()
        status_code: int | None = None
        error: str | None = None
        retry = True
        try:
            await check_url(delivery.url, allow_private=self._config.allow_private)
            body = delivery.payload.encode()
            msg_id = webhook_id(delivery.request_id)
            assert self._client is not None
            response = await self._client.post(
                delivery.url, content=body,
                headers=headers(delivery.secret, msg_id, int(time.time()), body))
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"the receiver answered HTTP {status_code}"
        except InvalidRequest as exc:
            error, retry = exc.message, False
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        delivered = error is None
        now = time.time()
        next_at = None if delivered or not retry else self._next_attempt(delivery, attempt, now)
        record = DeliveryAttempt(attempt=attempt, at=started, url=delivery.url,
                                 status_code=status_code, error=error,
                                 duration_ms=round((now - started) * 1000, 3))
        await self._accounts.record_delivery(delivery, record, next_at, delivered)
        if not delivered:
            log.info("webhook for %s attempt %d failed: %s%s", delivery.request_id, attempt,
                     error, "" if next_at else "; giving up")

    def _next_attempt(self, delivery: Delivery, attempt: int, now: float) -> float | None:
        cfg = self._config
        delay = min(cfg.initial_backoff * 2 ** (attempt - 1), cfg.max_backoff)
        at = now + delay * random.uniform(0.8, 1.2)
        return at if at - delivery.first_at <= cfg.retry_window else None
