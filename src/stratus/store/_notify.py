"""In-process wake-ups: job status changes and "there may be work"."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable

from stratus.store._types import JobRecord


class Notifier:
    def __init__(self) -> None:
        # per job: each waiter's future, and whether it waits only for the job's end
        self._watchers: dict[str, dict[asyncio.Future[None], bool]] = defaultdict(dict)
        self._work = asyncio.Event()

    def watch(self, job_id: str, ended_only: bool = False) -> asyncio.Future[None]:
        """A future resolved at the next status change of ``job_id`` (``ended_only``: at its
        end); call :meth:`unwatch`."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers[job_id][fut] = ended_only
        return fut

    def unwatch(self, job_id: str, fut: asyncio.Future[None]) -> None:
        watchers = self._watchers.get(job_id)
        if watchers is not None:
            watchers.pop(fut, None)
            if not watchers:
                del self._watchers[job_id]

    def job_changed(self, *job_ids: str, ended: bool = False) -> None:
        """The jobs' status changed (``ended``: to COMPLETED or FAILED)."""
        for job_id in job_ids:
            watchers = self._watchers.get(job_id)
            if not watchers:
                continue
            for fut, ended_only in list(watchers.items()):
                if ended or not ended_only:
                    del watchers[fut]
                    if not fut.done():
                        fut.set_result(None)
            if not watchers:
                del self._watchers[job_id]

    def wake_all(self) -> None:
        """Every watcher re-reads (hints may have been missed)."""
        self.job_changed(*list(self._watchers), ended=True)
        self._work.set()

    def work_available(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    async def wait(self, job_id: str, read: Callable[[], Awaitable[JobRecord | None]],
                   done: Callable[[JobRecord], bool], timeout: float, *,
                   ended_only: bool = False, poll: float | None = None) -> JobRecord | None:
        """Read the job until ``done`` says so (or it is gone), re-reading when it changes
        (``ended_only``: when it ends), at least every ``poll`` seconds, until ``timeout``;
        returns the last read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            fut = self.watch(job_id, ended_only)
            try:
                record = await read()  # after watching: a change in between is not missed
                left = deadline - loop.time()
                if record is None or done(record) or left <= 0:
                    return record
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, left if poll is None else min(left, poll))
            finally:
                self.unwatch(job_id, fut)
