"""What keeps batches moving after they are created: the requests of a cancelled batch are
ended ``canceled`` (queued ones at once, running ones stopped), those a batch still holds
queued when it expires end ``expired``, and batches past their retention are deleted with
their results.

Any API node may run it, at the same time as others: ending a queued job is one conditional
update, so each request is ended, and settled, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from stratus.batches._types import BatchStore, Due
from stratus.store import ErrorType, JobRecord, JobStore, Status

log = logging.getLogger("stratus.batches")

CHUNK = 500  # requests ended per statement
CANCELLED = "cancelled"
EXPIRED = "the batch expired (its expires_at passed) before this request ran"

Settle = Callable[[list[JobRecord]], Awaitable[None]]
CancelJob = Callable[[str], Awaitable[object]]


class BatchKeeper:
    def __init__(self, batches: BatchStore, store: JobStore, *, settle: Settle,
                 cancel_job: CancelJob, interval: float) -> None:
        self._batches = batches
        self._store = store
        self._settle = settle
        self._cancel_job = cancel_job
        self._interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="batch-keeper")

    def wake(self) -> None:
        """Look now (a batch was cancelled)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.keep()
            except Exception:
                log.exception("keeping batches failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def keep(self) -> None:
        """One pass: every batch due, then the retention."""
        for due in await self._batches.due():
            await self._end(due)
        purged = await self._batches.purge()
        if purged:
            log.info("deleted %d batches past their retention", purged)

    async def _end(self, due: Due) -> None:
        error, kind = ((CANCELLED, ErrorType.CANCELLED) if due.canceling
                       else (EXPIRED, ErrorType.EXPIRED))
        while True:
            ids = await self._batches.job_ids(due.id, (Status.QUEUED,), CHUNK)
            if ids:
                await self._settle(await self._store.end_queued(ids, error, kind.value))
            if len(ids) < CHUNK:
                break
        if due.canceling:  # running requests stop (their workers settle what they made)
            for job_id in await self._batches.job_ids(due.id, (Status.PROCESSING,), CHUNK):
                await self._cancel_job(job_id)
