"""Text as the engine makes it, for the clients streaming a job (in-process).

The worker publishes each text delta of a running job; stream routes read the deltas past
the ones they have sent and wait for more. A job's stream is closed when its job ends and
dropped a little later: a reader that arrives late, or misses deltas, completes its text from
the stored result, so the bus never needs to hold a finished job for long.
"""

from __future__ import annotations

import asyncio
import contextlib

KEEP_CLOSED = 30.0  # seconds a closed stream is kept, so a reader still sees it closed


class Stream:
    """One attempt of a job's text: the worker that runs the attempt writes to it."""

    __slots__ = ("closed", "text", "waiters")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.closed = False
        self.waiters: list[asyncio.Future[None]] = []

    def wake(self) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()


class TokenBus:
    def __init__(self) -> None:
        self._streams: dict[str, Stream] = {}

    def reset(self, job_id: str) -> Stream:
        """A new attempt of the job starts from nothing; returns the attempt's stream, for
        :meth:`publish` and :meth:`close` (an older attempt's stream is left alone)."""
        stream = self._streams.get(job_id)
        fresh = Stream()
        if stream is not None:
            fresh.waiters = stream.waiters  # readers of the last attempt wait on this one
            stream.waiters = []
        self._streams[job_id] = fresh
        return fresh

    def publish(self, stream: Stream, text: str) -> None:
        if not stream.closed:
            stream.text.append(text)
            stream.wake()

    def close(self, job_id: str, stream: Stream) -> None:
        if stream.closed:
            return
        stream.closed = True
        stream.wake()
        asyncio.get_running_loop().call_later(KEEP_CLOSED, self._drop, job_id, stream)

    def _drop(self, job_id: str, stream: Stream) -> None:
        if self._streams.get(job_id) is stream:
            del self._streams[job_id]

    def closed(self, job_id: str) -> bool:
        stream = self._streams.get(job_id)
        return stream is not None and stream.closed

    def since(self, job_id: str, index: int) -> list[str]:
        stream = self._streams.get(job_id)
        return stream.text[index:] if stream is not None else []

    async def wait(self, job_id: str, index: int, timeout: float) -> None:
        """Until the job's stream holds more than ``index`` deltas or is closed, or
        ``timeout``: at once if that is already so (nothing published in between is
        missed)."""
        stream = self._streams.get(job_id)
        if stream is None:  # not started here yet: the worker's reset takes the waiters over
            stream = self._streams[job_id] = Stream()
            asyncio.get_running_loop().call_later(KEEP_CLOSED, self._drop, job_id, stream)
        if len(stream.text) > index or stream.closed:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream.waiters.append(fut)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout)
        finally:
            current = self._streams.get(job_id)
            if current is not None and fut in current.waiters:
                current.waiters.remove(fut)
