"""In-process wake-ups: job status changes and "there may be work"."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict


class Notifier:
    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._work = asyncio.Event()

    def watch(self, job_id: str) -> asyncio.Future[None]:
        """A future resolved at the next status change of ``job_id``; call :meth:`unwatch`."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers[job_id].add(fut)
        return fut

    def unwatch(self, job_id: str, fut: asyncio.Future[None]) -> None:
        watchers = self._watchers.get(job_id)
        if watchers is not None:
            watchers.discard(fut)
            if not watchers:
                del self._watchers[job_id]

    def job_changed(self, *job_ids: str) -> None:
        for job_id in job_ids:
            for fut in self._watchers.pop(job_id, ()):
                if not fut.done():
                    fut.set_result(None)

    def wake_all(self) -> None:
        """Every watcher re-reads (hints may have been missed)."""
        self.job_changed(*list(self._watchers))
        self._work.set()

    def work_available(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()
