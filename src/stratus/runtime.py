"""Everything one server process runs, and the job operations every HTTP surface shares."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from stratus._sqlite import SqliteDB
from stratus.accounts import Account, Accounts, SqliteAccounts
from stratus.config import Config
from stratus.errors import (
    InvalidRequest,
    NotFound,
    RateLimited,
    Unavailable,
    UnprocessableRequest,
)
from stratus.models import ModelRegistry, ModelSpec
from stratus.normalize import Normalized
from stratus.store import IdempotencyConflict, JobRecord, JobStore, NewJob, SqliteJobStore
from stratus.streams import TokenBus
from stratus.worker import Worker


@dataclass
class Runtime:
    config: Config
    store: JobStore
    accounts: Accounts
    models: ModelRegistry
    worker: Worker
    bus: TokenBus = field(default_factory=TokenBus)
    _db: SqliteDB | None = None
    draining: bool = field(default=False)

    @classmethod
    def embedded(cls, config: Config) -> Runtime:
        """API, worker and engines in one process, on SQLite under the data dir."""
        server = config.server
        db = SqliteDB(server.data_dir / "stratus.db")
        store = SqliteJobStore(db, lease_seconds=server.lease_seconds,
                               max_attempts=server.max_attempts, result_ttl=server.result_ttl,
                               idempotency_ttl=server.idempotency_ttl)
        models = ModelRegistry.from_config(config.models, server.data_dir)
        bus = TokenBus()
        worker = Worker(store, models, lease_seconds=server.lease_seconds,
                        sweep_interval=min(server.sweep_interval, server.lease_seconds / 2),
                        bus=bus)
        return cls(config=config, store=store, accounts=SqliteAccounts(db), models=models,
                   worker=worker, bus=bus, _db=db)

    async def start(self) -> None:
        await self.models.start()
        self.worker.start()

    def begin_drain(self) -> None:
        """Stop admitting and claiming; running jobs go on."""
        self.draining = True
        self.worker.drain()

    async def stop(self) -> None:
        self.begin_drain()
        await self.worker.stop(self.config.server.shutdown_grace)
        await self.models.close()
        await self.store.close()
        if self._db is not None:
            self._db.close()

    @property
    def ready(self) -> bool:
        return not self.draining and self.worker.alive

    # -- job operations --------------------------------------------------------------------

    async def submit(self, account: Account, spec: ModelSpec, requested_model: str,
                     normalized: Normalized, request_id: str,
                     idempotency_key: str | None, body: Any) -> tuple[JobRecord, bool]:
        if self.draining:
            raise Unavailable("this server is shutting down: retry on another node or shortly",
                              headers={"Retry-After": "5"})
        depth = await self.store.queued(spec.slug)
        if depth >= spec.config.max_queue:
            raise RateLimited(
                f"queue full: model {spec.slug!r} already has {depth} requests waiting "
                f"(max_queue {spec.config.max_queue}); retry later",
                retry_after=max(1.0, spec.config.execution_timeout / 60))
        body_hash = None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 255:
                raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
            canonical = json.dumps([requested_model, body], sort_keys=True,
                                   separators=(",", ":"))
            body_hash = hashlib.sha256(canonical.encode()).hexdigest()
        job = NewJob(
            id=request_id,
            account_id=account.id,
            model=spec.slug,
            requested_model=requested_model,
            request=normalized.request.model_dump(mode="json"),
            idempotency_key=idempotency_key,
            body_hash=body_hash,
        )
        try:
            return await self.store.submit(job)
        except IdempotencyConflict as exc:
            raise UnprocessableRequest(
                f"Idempotency-Key {idempotency_key!r} was already used with a different "
                f"request (request_id {exc.job_id}): use a new key for a new request",
                extra={"request_id": exc.job_id},
            ) from None

    async def job_for(self, account: Account, job_id: str) -> JobRecord:
        record = await self.store.get(job_id)
        if record is None or record.account_id != account.id:
            raise self._unknown(job_id)
        return record

    async def wait_for_change(self, record: JobRecord, timeout: float) -> JobRecord:
        """The job once its status moves on from ``record.status``, or as it is at timeout."""
        if record.status.is_terminal() or timeout <= 0:
            return record
        changed = await self.store.wait_for_change(record.id, record.status, timeout)
        if changed is None:
            raise self._unknown(record.id)
        return changed

    async def wait_until_ended(self, record: JobRecord, timeout: float) -> JobRecord:
        deadline = time.monotonic() + timeout
        while not record.status.is_terminal():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            record = await self.wait_for_change(record, left)
        return record

    async def cancel(self, account: Account, job_id: str) -> tuple[JobRecord, bool]:
        """The record after the call, and whether this call ended the job."""
        await self.job_for(account, job_id)
        record, cancelled = await self.store.cancel(job_id)
        if record is None:
            raise self._unknown(job_id)
        return record, cancelled

    def _unknown(self, job_id: str) -> NotFound:
        ttl = self.config.server.result_ttl
        return NotFound(
            f"unknown request id {job_id!r}: it does not exist, belongs to another account, "
            f"or its result expired (results are kept {ttl:g} s)"
        )

