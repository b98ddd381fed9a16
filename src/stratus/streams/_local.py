"""Token streams in the process: the worker and the routes that read its text share memory.

An attempt's stream is closed when the attempt ends and dropped a little later: a reader that
arrives late, or misses deltas, completes its text from the stored result, so nothing here is
held for a finished job for long.
"""

from __future__ import annotations

import asyncio
import contextlib

from stratus.streams._types import START_WAIT, Position, Read, State

KEEP_CLOSED = 30.0  # seconds a closed stream is kept, so a reader still sees it closed


class _Attempt:
    """One attempt's deltas (``token`` is None for a stream readers wait on before any
    attempt of the job started here)."""

    __slots__ = ("closed", "text", "token", "waiters")

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.text: list[str] = []
        self.closed = False
        self.waiters: list[asyncio.Future[None]] = []

    def wake(self) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()


class LocalTokenStream:
    def __init__(self) -> None:
        self._streams: dict[str, _Attempt] = {}  # job id: its latest attempt

    async def start(self, job_id: str, attempt: str) -> None:
        old = self._streams.get(job_id)
        self._streams[job_id] = _Attempt(attempt)
        if old is not None:
            old.wake()  # its readers look again, at the new attempt

    async def publish(self, job_id: str, attempt: str, text: str) -> None:
        stream = self._streams.get(job_id)
        if stream is not None and stream.token == attempt and not stream.closed:
            stream.text.append(text)
            stream.wake()

    async def end(self, job_id: str, attempt: str) -> None:
        stream = self._streams.get(job_id)
        if stream is None or stream.token != attempt or stream.closed:
            return
        stream.closed = True
        stream.wake()
        asyncio.get_running_loop().call_later(KEEP_CLOSED, self._drop, job_id, stream)

    async def read(self, job_id: str, position: Position, timeout: float) -> Read:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        while True:
            stream = self._streams.get(job_id)
            got = _take(stream, position)
            if got is not None:
                return got
            started = stream is not None and stream.token is not None
            until = begun + (timeout if started else min(timeout, START_WAIT))
            left = until - loop.time()
            if left <= 0:
                return Read((), position, State.LIVE if started else State.ABSENT)
            if stream is None:  # not started here yet: the worker's start wakes the waiters
                stream = self._streams[job_id] = _Attempt(None)
                loop.call_later(KEEP_CLOSED, self._drop, job_id, stream)
            fut: asyncio.Future[None] = loop.create_future()
            stream.waiters.append(fut)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, left)
            finally:
                if fut in stream.waiters:
                    stream.waiters.remove(fut)

    async def close(self) -> None:
        for stream in self._streams.values():
            stream.wake()
        self._streams.clear()

    def _drop(self, job_id: str, stream: _Attempt) -> None:
        if self._streams.get(job_id) is stream:
            del self._streams[job_id]


def _take(stream: _Attempt | None, position: Position) -> Read | None:
    """What a reader at ``position`` is told now; None: nothing yet, it waits."""
    if stream is None or stream.token is None:
        return None
    if position.attempt != stream.token:
        if position.has_read:
            return Read((), position, State.RESTARTED)
        position = Position(stream.token)
    texts = stream.text[int(position.offset):]
    if not texts and not stream.closed:
        return None
    state = State.ENDED if stream.closed else State.LIVE
    return Read(tuple(texts), Position(stream.token, str(len(stream.text))), state)
