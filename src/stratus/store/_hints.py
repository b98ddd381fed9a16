"""Wake-up hints between processes, over Redis pub/sub.

A hint is published after the change it announces has been committed to the database:
"these jobs changed", "there may be work", "a webhook is due". Every process subscribes and
passes what it hears to its own in-process :class:`~stratus.store._notify.Notifier`. Hints
may be lost (Redis down, a subscriber reconnecting): whoever waits on one also re-reads the
database at least every ``POLL`` seconds, so a lost hint costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stratus import _keys
from stratus.store._notify import Notifier

log = logging.getLogger("stratus.hints")

POLL = 2.0  # seconds: the longest anyone waits on a hint before re-reading the database
WARN_EVERY = 30.0


class RedisHints:
    def __init__(self, url: str, notifier: Notifier) -> None:
        self._redis = aioredis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self._notifier = notifier
        self._webhook_listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._warned = 0.0
        self._closing = False

    def on_webhook(self, listener: Callable[[], None]) -> None:
        self._webhook_listeners.append(listener)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="stratus-hints")

    async def close(self) -> None:
        # redis-py's get_message can swallow a cancellation: the loop also checks this flag
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._redis.aclose()

    # -- publishing ------------------------------------------------------------------------

    async def changed(self, job_ids: tuple[str, ...], ended: bool = False, work: bool = False,
                      webhook: bool = False) -> None:
        """Jobs changed (``ended``: they ended); ``work``: one may be claimable; ``webhook``:
        a delivery is due."""
        channel = _keys.ENDED_CHANNEL if ended else _keys.JOBS_CHANNEL
        messages = [(channel, " ".join(job_ids))] if job_ids else []
        if work:
            messages.append((_keys.WORK_CHANNEL, "1"))
        if webhook:
            messages.append((_keys.WEBHOOKS_CHANNEL, "1"))
        if messages:
            await self._publish(*messages)

    async def _publish(self, *messages: tuple[str, str]) -> None:
        """``(channel, data)`` pairs, in one round trip."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, data in messages:
                    pipe.publish(channel, data)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._warn(f"could not publish a wake-up hint ({exc}); waiters re-read the "
                       f"database every {POLL:g} s")

    # -- listening -------------------------------------------------------------------------

    async def _listen(self) -> None:
        while not self._closing:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(_keys.JOBS_CHANNEL, _keys.ENDED_CHANNEL,
                                       _keys.WORK_CHANNEL, _keys.WEBHOOKS_CHANNEL)
                # Anything published while we were away is lost: wake everyone to re-read.
                self._notifier.wake_all()
                while not self._closing:
                    message = await pubsub.get_message(timeout=0.5)
                    if message is not None:
                        self._deliver(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                self._warn(f"lost the wake-up channel ({exc}); re-subscribing")
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _deliver(self, channel: bytes, data: bytes) -> None:
        name = channel.decode()
        if name in (_keys.JOBS_CHANNEL, _keys.ENDED_CHANNEL):
            self._notifier.job_changed(*data.decode().split(),
                                       ended=name == _keys.ENDED_CHANNEL)
        elif name == _keys.WORK_CHANNEL:
            self._notifier.work_available()
        elif name == _keys.WEBHOOKS_CHANNEL:
            for listener in self._webhook_listeners:
                listener()

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning(message)
