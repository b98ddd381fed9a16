"""Everything one server process runs, and the job operations every HTTP surface shares."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stratus import backends
from stratus._offload import Offload
from stratus.accounts import Account, Accounts, ApiKey, Caller
from stratus.admission import Admission, Admitter
from stratus.config import Config, ModelConfig
from stratus.errors import NotFound, PermissionDenied, Unavailable
from stratus.limits import LocalRateLimiter, RateLimiter
from stratus.models import ModelRegistry, ModelSpec
from stratus.normalize import Normalized
from stratus.outcomes import Outcomes
from stratus.policy import ContentPolicy
from stratus.store import JobRecord, JobStore
from stratus.streams import TokenBus
from stratus.webhooks import Dispatcher
from stratus.worker import Worker


def may_use(key: ApiKey, model: ModelConfig) -> bool:
    allowed = key.options.models
    return allowed is None or not {model.slug, *model.aliases}.isdisjoint(allowed)


@dataclass
class Runtime:
    config: Config
    store: JobStore
    accounts: Accounts
    models: ModelRegistry
    worker: Worker
    outcomes: Outcomes
    dispatcher: Dispatcher
    policy: ContentPolicy
    bus: TokenBus = field(default_factory=TokenBus)
    limiter: RateLimiter = field(default_factory=LocalRateLimiter)
    offload: Offload = field(default_factory=Offload)
    _close_db: Callable[[], None] | None = None
    draining: bool = field(default=False)
    _drain_deadline: float = 0.0
    admitter: Admitter = field(init=False)

    def __post_init__(self) -> None:
        self.admitter = Admitter(self.config, self.store, self.accounts, self.limiter,
                                 self.policy, self.offload, self.outcomes)

    @classmethod
    def embedded(cls, config: Config) -> Runtime:
        """API, worker and engines in one process, on SQLite under the data dir."""
        server = config.server
        database = backends.database(config)
        store, accounts = database.store, database.accounts
        models = ModelRegistry.from_config(config.models, server.data_dir)
        bus = TokenBus()
        dispatcher = Dispatcher(accounts, config.webhooks)
        outcomes = Outcomes(store, accounts, on_webhook=dispatcher.wake)
        policy = ContentPolicy(config.policy)
        worker = Worker(store, models, lease_seconds=server.lease_seconds,
                        sweep_interval=min(server.sweep_interval, server.lease_seconds / 2),
                        bus=bus, outcomes=outcomes, policy=policy)
        return cls(config=config, store=store, accounts=accounts, models=models,
                   worker=worker, outcomes=outcomes, dispatcher=dispatcher, policy=policy,
                   bus=bus, limiter=backends.rate_limiter(config), _close_db=database.close)

    async def start(self) -> None:
        await self.models.start()
        await self._fail_unserved()
        await self.outcomes.reconcile()  # before the first sweep removes any expired job
        self.worker.start()
        self.dispatcher.start()

    async def _fail_unserved(self) -> None:
        """Jobs queued for a model that is no longer configured would wait forever holding
        their credits: they end FAILED (charged nothing) with an error that says why."""
        slugs = [spec.slug for spec in self.models]
        for job_id in await self.store.fail_unserved(
                slugs, "the model of this request is no longer served by this server; it "
                "was not finished and not charged"):
            await self.outcomes.ended(job_id)

    def begin_drain(self) -> None:
        """Stop admitting and claiming; running jobs go on."""
        if not self.draining:
            self.draining = True
            self._drain_deadline = time.monotonic() + self.config.server.shutdown_grace
        self.worker.drain()

    async def drain(self) -> None:
        """Stop admitting, and return once the running jobs have ended or the grace period
        has passed."""
        self.begin_drain()
        await self.worker.wait_idle(self.grace_left())

    def grace_left(self) -> float:
        return max(0.0, self._drain_deadline - time.monotonic())

    def end_grace(self) -> None:
        """Stop waiting for running jobs: they are handed back to the queue at stop."""
        self.begin_drain()
        self._drain_deadline = time.monotonic()

    async def stop(self) -> None:
        """Drain, stop the worker (handing back what the grace did not let end), and close
        every backend."""
        self.begin_drain()
        await self.worker.stop(self.grace_left())
        await self.dispatcher.stop()
        await self.models.close()
        await self.store.close()
        await self.limiter.close()
        self.offload.close()
        if self._close_db is not None:
            self._close_db()

    @property
    def ready(self) -> bool:
        return not self.draining and self.worker.alive

    # -- job operations --------------------------------------------------------------------

    async def submit(self, caller: Caller, spec: ModelSpec, requested_model: str,
                     prepare: Callable[[], Normalized], *, request_id: str,
                     idempotency_key: str | None, body: Any, stream: bool = False,
                     webhook: str | None = None, wants_result: bool = True,
                     body_size: int | None = None) -> tuple[Admission, Normalized | None]:
        """Admit a request and queue its job (see :class:`stratus.admission.Admitter`)."""
        if self.draining:
            raise Unavailable("this server is shutting down: retry on another node or shortly",
                              headers={"Retry-After": "5"})
        self.check_scope(caller.key, spec, requested_model)
        return await self.admitter.submit(
            caller, spec, requested_model, prepare, request_id=request_id,
            idempotency_key=idempotency_key, body=body, stream=stream, webhook=webhook,
            wants_result=wants_result, body_size=body_size)

    def check_scope(self, key: ApiKey, spec: ModelSpec, requested_model: str) -> None:
        if not may_use(key, spec.config):
            allowed = ", ".join(key.options.models or ())
            raise PermissionDenied(
                f"this API key may not use model {requested_model!r}: it is limited to "
                f"{allowed}")

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
        record, cancelled = await self.cancel_job(job_id)
        if record is None:
            raise self._unknown(job_id)
        return record, cancelled

    async def cancel_job(self, job_id: str) -> tuple[JobRecord | None, bool]:
        """A job cancelled while QUEUED is settled here (nothing to charge); one cancelled
        while running is settled by its worker once it has stopped, for the tokens it had
        generated (or, if that worker is gone, by the next reconcile pass)."""
        record, cancelled = await self.store.cancel(job_id)
        if cancelled and record is not None and record.started_at is None:
            await self.outcomes.settle(record)
        return record, cancelled

    def _unknown(self, job_id: str) -> NotFound:
        ttl = self.config.server.result_ttl
        return NotFound(
            f"unknown request id {job_id!r}: it does not exist, belongs to another account, "
            f"or its result expired (results are kept {ttl:g} s)"
        )

