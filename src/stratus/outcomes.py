"""What happens once a job has started or ended, whoever ended it: its history is kept up to
date and, at its end, its credits are settled and its webhook queued, exactly once.

The worker, a cancel, and the store's sweep each report the jobs they end. On SQLite a job's
end and its settlement are two transactions, so a process that dies between them leaves the
request open; :meth:`Outcomes.reconcile` finds such requests and settles them from the job, or
releases them if the job is gone. On PostgreSQL the store settles a job in the transaction that
ends it (``settled_by_store``); settling again changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from stratus.accounts import Accounts
from stratus.backends import webhook_payload
from stratus.store import ErrorType, JobRecord, JobStore, SweepReport

log = logging.getLogger("stratus.outcomes")

RECONCILE_AFTER = 60.0  # seconds a request may stay open before its job is looked at
RECONCILE_BATCH = 200


class Outcomes:
    def __init__(self, store: JobStore, accounts: Accounts,
                 on_webhook: Callable[[], None] = lambda: None, *,
                 settled_by_store: bool = False) -> None:
        self._store = store
        self._settled_by_store = settled_by_store
        self._accounts = accounts
        self._on_webhook = on_webhook
        self._next_reconcile = 0.0

    async def started(self, record: JobRecord) -> None:
        if not self._settled_by_store:  # else the claim's own transaction did
            await self._accounts.start_request(record.id, record.started_at or time.time())

    async def ended(self, job_id: str) -> None:
        record = await self._store.get(job_id)
        if record is not None and record.status.is_terminal():
            await self.settle(record)

    async def settle(self, record: JobRecord) -> None:
        if await self._accounts.close_request(record, webhook_payload(record)):
            self._on_webhook()

    async def worker_ended(self, record: JobRecord) -> None:
        """A worker's complete or fail ended the job: settle it, unless the store did."""
        if not self._settled_by_store:
            await self.settle(record)

    async def after_sweep(self, report: SweepReport) -> None:
        """Settle the jobs a store sweep failed, drop history past its retention, and now
        and then reconcile."""
        for job_id in report.failed:
            await self.ended(job_id)
        now = time.time()
        await self._accounts.sweep(now)
        if now >= self._next_reconcile:
            self._next_reconcile = now + RECONCILE_AFTER
            await self.reconcile(now)

    async def reconcile(self, now: float | None = None) -> int:
        """Settle requests left open by a process that died; returns how many it closed."""
        now = time.time() if now is None else now
        closed = 0
        after: str | None = None
        while True:
            page = await self._accounts.open_requests(now - RECONCILE_AFTER, RECONCILE_BATCH,
                                                      after)
            for request_id in page:
                closed += await self._reconcile_one(request_id, now)
            if len(page) < RECONCILE_BATCH:
                break
            after = page[-1]
        if closed:
            log.info("settled %d requests left open", closed)
        return closed

    async def _reconcile_one(self, request_id: str, now: float) -> int:
        record = await self._store.get(request_id, expired=True)
        if record is None:
            return int(await self._accounts.abandon_request(
                request_id, "the request was lost before it ran; it was not charged"))
        if not record.status.is_terminal():
            return 0
        if (record.error_type == ErrorType.CANCELLED and record.started_at is not None
                and record.metrics is None and now - (record.completed_at or now)
                < RECONCILE_AFTER):
            return 0  # cancelled while it ran: its worker settles it, with what it generated
        await self.settle(record)
        return 1
