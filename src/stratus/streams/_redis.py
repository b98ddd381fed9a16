"""Token streams in Redis: a job's text reaches readers on every API node.

Each attempt's deltas go to a Redis Stream of their own (``_keys.token_stream``), its entries
numbered 1, 2, 3... (ids ``n-0``) so that a reader knows when it missed one; the last entry
marks the end. ``_keys.token_attempt`` names the attempt readers follow. Both keys expire
(refreshed on every write, sooner once the attempt ended). One task per attempt writes:
deltas that come in while a write is under way, or within ``FLUSH_EVERY`` of the last one,
go into one entry, so a fast engine does not make a round trip per token and never waits on
Redis. A failed write is tried again every ``RETRY_AFTER`` seconds, under the same number
(an entry is added once however often it is tried), and once more at the end. While Redis
cannot be reached, failures are logged now and then and readers are told nothing is live:
the routes complete from the stored result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stratus import _keys
from stratus.streams._types import START_WAIT, Position, Read, State

log = logging.getLogger("stratus.streams")

TTL = 600.0  # seconds an attempt's keys live past their last write
CLOSED_TTL = 60.0  # ... past its end
MAXLEN = 10_000  # entries kept per attempt (approximately): a reader further behind gives up
FLUSH_EVERY = 0.025  # seconds at least between two writes of one attempt
RETRY_AFTER = 1.0  # seconds before a failed write is tried again
CLOSE_WAIT = 1.0  # seconds ``end`` waits for the attempt's last writes
BLOCK_STEP = 1.0  # seconds one XREAD blocks; between two, the reader checks the attempt
POLL = 0.05  # seconds between two looks for a job's first attempt
COUNT = 1000  # entries one read takes at most
WARN_EVERY = 30.0  # seconds between warnings while Redis is unreachable

TEXT, END = "t", "e"  # the field of a text entry, of the end entry

# KEYS[1]: the attempt's stream, KEYS[2]: the job's current attempt.
# ARGV: the entry's number, field, value; maxlen; ttl (ms); the attempt's token.
# An entry that is already there (a retry after a lost reply) is not added again.
_APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 or tonumber(string.match(last[1][1], '^(%d+)')) < tonumber(ARGV[1]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], ARGV[1] .. '-0', ARGV[2], ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('GET', KEYS[2]) == ARGV[6] then
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _number(entry_id: str) -> int:
    """The number of an entry id (``n-0``), 0 for the start."""
    return int(entry_id.partition("-")[0])


class RedisTokenStream:
    def __init__(self, client: aioredis.Redis, *, ttl: float = TTL,
                 closed_ttl: float = CLOSED_TTL, maxlen: int = MAXLEN) -> None:
        """``client`` must decode responses, and speak RESP2."""
        self._client = client
        self._append = client.register_script(_APPEND)
        self._ttl = ttl
        self._closed_ttl = closed_ttl
        self._maxlen = maxlen
        self._writers: dict[tuple[str, str], _Writer] = {}
        self._warned = 0.0
        self.failures = 0  # Redis calls that failed

    @classmethod
    def from_url(cls, url: str, *, ttl: float = TTL, closed_ttl: float = CLOSED_TTL,
                 maxlen: int = MAXLEN) -> RedisTokenStream:
        # the socket timeout outlasts one blocking read; replies are read as RESP2's
        client = aioredis.Redis.from_url(url, decode_responses=True, protocol=2,
                                         socket_timeout=BLOCK_STEP + 2.0,
                                         socket_connect_timeout=2.0)
        return cls(client, ttl=ttl, closed_ttl=closed_ttl, maxlen=maxlen)

    # -- writing ---------------------------------------------------------------------------

    async def start(self, job_id: str, attempt: str) -> None:
        if (job_id, attempt) in self._writers:
            return
        # an older attempt of the job still writing here becomes current first
        before = next((writer for (job, _), writer in reversed(self._writers.items())
                       if job == job_id), None)
        self._writers[job_id, attempt] = _Writer(self, job_id, attempt, before)

    async def publish(self, job_id: str, attempt: str, text: str) -> None:
        writer = self._writers.get((job_id, attempt))
        if writer is not None:
            writer.add(text)

    async def end(self, job_id: str, attempt: str) -> None:
        writer = self._writers.get((job_id, attempt))
        if writer is not None:
            writer.finish()
            await asyncio.wait({writer.task}, timeout=CLOSE_WAIT)

    async def close(self) -> None:
        writers = list(self._writers.values())
        for writer in writers:
            writer.finish()
        tasks = {writer.task for writer in writers}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_WAIT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()

    async def _begin(self, job_id: str, attempt: str) -> None:
        await self._client.set(_keys.token_attempt(job_id), attempt, px=_ms(self._ttl))

    async def _write(self, job_id: str, attempt: str, number: int, field: str,
                     value: str) -> None:
        ttl = self._closed_ttl if field == END else self._ttl
        await self._append(
            keys=[_keys.token_stream(job_id, attempt), _keys.token_attempt(job_id)],
            args=[number, field, value, self._maxlen, _ms(ttl), attempt])

    def _gone(self, writer: _Writer) -> None:
        if self._writers.get((writer.job_id, writer.attempt)) is writer:
            del self._writers[writer.job_id, writer.attempt]
        task = writer.task
        if not task.cancelled() and task.exception() is not None:
            log.error("token stream writer of job %s failed", writer.job_id,
                      exc_info=task.exception())

    # -- reading ---------------------------------------------------------------------------

    async def read(self, job_id: str, position: Position, timeout: float) -> Read:
        try:
            return await self._read(job_id, position, timeout)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return Read((), position, State.ABSENT)

    async def _read(self, job_id: str, position: Position, timeout: float) -> Read:
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + max(timeout, 0.0)
        current = await self._current(job_id, min(deadline, now + START_WAIT))
        while True:
            if current is None:
                return Read((), position, State.ABSENT)
            if position.attempt != current:
                if position.has_read:
                    return Read((), position, State.RESTARTED)
                position = Position(current)
            left = deadline - loop.time()
            block = _ms(min(left, BLOCK_STEP)) if left > 0 else None
            reply = await self._client.xread({_keys.token_stream(job_id, current):
                                              position.offset}, count=COUNT, block=block)
            if reply:
                return _entries(position, reply[0][1])
            if left <= BLOCK_STEP:
                return Read((), position, State.LIVE)
            current = await self._client.get(_keys.token_attempt(job_id))

    async def _current(self, job_id: str, until: float) -> str | None:
        """The job's current attempt, looked for until ``until`` (the loop's clock)."""
        loop = asyncio.get_running_loop()
        while True:
            current: str | None = await self._client.get(_keys.token_attempt(job_id))
            if current is not None or loop.time() >= until:
                return current
            await asyncio.sleep(min(POLL, max(until - loop.time(), 0.0)))

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("Redis is unreachable (%s): token streams are not live; streams "
                        "complete from the stored results", error)


def _entries(position: Position, entries: list[tuple[str, dict[str, str]]]) -> Read:
    """What a reader at ``position`` is told of the entries read past it: a missing entry
    (trimmed, expired, or lost with Redis) means the stream cannot be trusted."""
    texts: list[str] = []
    expected = _number(position.offset) + 1
    for entry_id, fields in entries:
        if _number(entry_id) != expected:
            break
        expected += 1
        if END in fields:  # not read past: a reader that comes back is told the end again
            return Read(tuple(texts), position, State.ENDED)
        position = Position(position.attempt, entry_id)
        texts.append(fields.get(TEXT, ""))
    else:
        return Read(tuple(texts), position, State.LIVE)
    return Read(tuple(texts), position, State.LIVE if texts else State.ABSENT)


class _Writer:
    """One attempt's deltas on their way to Redis, written in order by one task."""

    def __init__(self, owner: RedisTokenStream, job_id: str, attempt: str,
                 before: _Writer | None) -> None:
        self.owner = owner
        self.job_id = job_id
        self.attempt = attempt
        self.before = before
        self.begun = asyncio.Event()  # the attempt was made current, or could not be
        self.pending: list[str] = []
        self.ending = False
        self.wake = asyncio.Event()  # a delta or the end is pending
        self.ended = asyncio.Event()  # the end was asked for: pauses are cut short
        self.task = asyncio.create_task(self._run(), name=f"tokens-{job_id}")
        self.task.add_done_callback(lambda _: owner._gone(self))

    def add(self, text: str) -> None:
        if not self.ending:
            self.pending.append(text)
            self.wake.set()

    def finish(self) -> None:
        self.ending = True
        self.wake.set()
        self.ended.set()

    async def _run(self) -> None:
        owner = self.owner
        begun = False
        try:
            if self.before is not None:
                await self.before.begun.wait()
                self.before = None
            begun = await self._try(owner._begin(self.job_id, self.attempt))
        finally:
            self.begun.set()
        if not begun:
            return  # no reader can find this attempt: nothing is written for it
        number = 0
        entry: tuple[str, str] | None = None  # the entry being written, kept over a failed try
        while True:
            if entry is None:
                if self.pending:
                    entry = (TEXT, "".join(self.pending))
                    self.pending.clear()
                elif self.ending:
                    entry = (END, "")
                else:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                number += 1
            if await self._try(owner._write(self.job_id, self.attempt, number, *entry)):
                if entry[0] == END:
                    return
                entry = None
                await self._pause(FLUSH_EVERY)  # what comes in meanwhile goes in one entry
            elif self.ending:
                return  # the end was asked for: this was the last try
            else:
                await self._pause(RETRY_AFTER)

    async def _try(self, call: Coroutine[Any, Any, None]) -> bool:
        try:
            await call
        except (RedisError, OSError) as exc:
            self.owner._failed(exc)
            return False
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), seconds)
