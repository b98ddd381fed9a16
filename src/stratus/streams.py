"""Text as the engine makes it, for the clients streaming a job (in-process).

The worker publishes each text delta of a running job; stream routes read the deltas past
the ones they have sent and wait for more. A stream is dropped when its job ends: a reader
that arrives late, or misses deltas, completes its text from the stored result, so the bus
never needs to hold a finished job.
"""

from __future__ import annotations

import asyncio
import contextlib


class TokenBus:
    def __init__(self) -> None:
        self._text: dict[str, list[str]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def reset(self, job_id: str) -> None:
        """A new attempt of the job starts from nothing."""
        self._text[job_id] = []

    def publish(self, job_id: str, text: str) -> None:
        self._text.setdefault(job_id, []).append(text)
        self._wake(job_id)

    def close(self, job_id: str) -> None:
        self._text.pop(job_id, None)
        self._wake(job_id)

    def since(self, job_id: str, index: int) -> list[str]:
        return self._text.get(job_id, [])[index:]

    async def wait(self, job_id: str, timeout: float) -> None:
        """Until the next delta or the end of the job's stream, or ``timeout``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(fut)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout)
        finally:
            waiters = self._waiters.get(job_id, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._waiters.pop(job_id, None)

    def _wake(self, job_id: str) -> None:
        for fut in self._waiters.pop(job_id, []):
            if not fut.done():
                fut.set_result(None)
