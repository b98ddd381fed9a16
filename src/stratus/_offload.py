"""CPU-bound request work (parsing, image decoding, prompt rendering and tokenizing) run on a
few threads, off the event loop, so one large request never stalls the others."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from stratus.errors import Unavailable

T = TypeVar("T")

PREPARE_THREADS = 2  # requests parsed, decoded and tokenized at once
INLINE_BYTES = 16 * 1024  # a body this small is worked on in place: a thread hop costs more
MAX_WAITING = 1000  # requests waiting for a thread, past which new ones get 503


class Offload:
    def __init__(self, workers: int = PREPARE_THREADS, max_waiting: int = MAX_WAITING) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers),
                                            thread_name_prefix="stratus-prepare")
        self._limit = max(1, workers) + max_waiting
        self._pending = 0

    async def run(self, fn: Callable[..., T], *args: Any, size: int | None = None) -> T:
        """``fn(*args)`` on a worker thread; 503 if too many requests wait already. Work on
        a body of ``size`` bytes up to ``INLINE_BYTES`` is done at once, on the caller's
        thread (it takes well under a millisecond)."""
        if size is not None and size <= INLINE_BYTES:
            return fn(*args)
        if self._pending >= self._limit:
            raise Unavailable("the server is busy working on other requests: retry shortly",
                              headers={"Retry-After": "1"})
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
