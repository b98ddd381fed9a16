"""Everything one server process runs, and the job operations every HTTP surface shares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from stratus import backends
from stratus._offload import Offload
from stratus.accounts import Account, Accounts, ApiKey
from stratus.admission import Admission, Admitter, Submission
from stratus.backends import Database
from stratus.batches import BatchAdmitter, BatchKeeper, BatchStore
from stratus.config import Config, ConfigError, ModelConfig
from stratus.errors import NotFound, PermissionDenied, Unavailable
from stratus.limits import LocalRateLimiter, RateLimiter
from stratus.models import ModelRegistry, ModelSpec
from stratus.normalize import Normalized
from stratus.outcomes import Outcomes
from stratus.policy import ContentPolicy
from stratus.store import JobRecord, JobStore, Status
from stratus.store._hints import POLL
from stratus.streams import LocalTokenStream, TokenStream
from stratus.telemetry import Telemetry
from stratus.webhooks import IDLE_CHECK, Dispatcher
from stratus.worker import Worker, on_demand

log = logging.getLogger("stratus.runtime")


_STATE_ORDER = ("ready", "loading", "unloaded", "cooldown")


def _best(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """What the live workers' reports of one model come to: ready if any is; else loading,
    else unloaded (a request loads it); else the cooldown that ends first."""
    return min(reports, key=lambda r: (
        _STATE_ORDER.index(r.get("state", "cooldown")) if r.get("state") in _STATE_ORDER
        else len(_STATE_ORDER), r.get("next_probe_at") or 0.0))


def may_use(key: ApiKey, model: ModelConfig) -> bool:
    allowed = key.options.models
    return allowed is None or not {model.slug, *model.aliases}.isdisjoint(allowed)


Role = Literal["all", "api", "worker"]
ROLES: tuple[Role, ...] = ("all", "api", "worker")


@dataclass
class Runtime:
    """One process's part of the service.

    ``role``: ``all`` (``stratus serve``: HTTP, worker and engines in one process), ``api``
    (HTTP and admission; models load only their tokenizers, for counting; jobs run on
    workers elsewhere) or ``worker`` (engines and the worker for ``models``; HTTP only for
    health). Every role runs the housekeeping (sweep, settlement of requests left open) and
    the webhook sender: on PostgreSQL any node may, one at a time."""

    config: Config
    database: Database
    models: ModelRegistry
    worker: Worker | None
    outcomes: Outcomes
    dispatcher: Dispatcher
    policy: ContentPolicy
    role: Role = "all"
    bus: TokenStream = field(default_factory=LocalTokenStream)
    limiter: RateLimiter = field(default_factory=LocalRateLimiter)
    offload: Offload = field(default_factory=Offload)
    telemetry: Telemetry = field(default_factory=Telemetry)
    draining: bool = field(default=False)
    _drain_deadline: float = 0.0
    _housekeeping: asyncio.Task[None] | None = None
    _idle_watch: asyncio.Task[None] | None = None
    # what stops the process once its worker has had nothing to do for max_idle seconds
    on_idle_exit: Callable[[], None] = lambda: None
    admitter: Admitter = field(init=False)
    batch_admitter: BatchAdmitter = field(init=False)
    batch_keeper: BatchKeeper = field(init=False)

    def __post_init__(self) -> None:
        self.admitter = Admitter(self.config, self.store, self.accounts, self.database.admit,
                                 self.limiter, self.policy, self.offload, self.outcomes,
                                 self.telemetry)
        self.batch_admitter = BatchAdmitter(
            self.config.batches, self.models, self.policy, self.limiter, self.offload,
            self.admitter.images, self.database.admit_batch, self.check_scope,
            self._settle_ids)
        self.batch_keeper = BatchKeeper(
            self.batches, self.store, settle=self._settle_all, cancel_job=self.cancel_job,
            interval=self.config.server.sweep_interval)

    @property
    def store(self) -> JobStore:
        return self.database.store

    @property
    def accounts(self) -> Accounts:
        return self.database.accounts

    @property
    def batches(self) -> BatchStore:
        return self.database.batches

    @classmethod
    def embedded(cls, config: Config) -> Runtime:
        """API, worker and engines in one process (``stratus serve``)."""
        return cls.from_config(config, "all")

    @classmethod
    def from_config(cls, config: Config, role: Role = "all",
                    serve: Collection[str] | None = None,
                    max_idle: float | None = None) -> Runtime:
        """The runtime of ``role``; ``serve``: the models a worker runs (default: all);
        ``max_idle``: a worker with nothing to do for that many seconds stops."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        server = config.server
        database = backends.database(config)
        if role != "all" and not database.shared:
            raise ConfigError(
                f"`stratus {role}` shares its database with other processes: set "
                "[database] url (or STRATUS_DATABASE_URL) to a postgresql:// URL")
        models = ModelRegistry.from_config(config.models, server.data_dir)
        bus = backends.token_stream(config)
        telemetry = Telemetry()
        dispatcher = Dispatcher(accounts=database.accounts, config=config.webhooks,
                                idle_check=POLL if database.shared else IDLE_CHECK,
                                on_attempt=lambda outcome: telemetry.webhooks.labels(
                                    outcome).inc())
        database.on_webhook(dispatcher.wake)
        outcomes = Outcomes(database.store, database.accounts, on_webhook=dispatcher.wake,
                            settled_by_store=database.settles_on_end)
        policy = ContentPolicy(config.policy)
        worker = None
        if role != "api":
            served = models if serve is None else models.only(serve)
            worker = Worker(database.store, served, lease_seconds=server.lease_seconds,
                            sweep_interval=min(server.sweep_interval, server.lease_seconds / 2),
                            bus=bus, outcomes=outcomes, policy=policy, telemetry=telemetry,
                            memory_budget=config.worker.memory_budget,
                            load_retry=config.worker.load_retry, max_idle=max_idle)
        return cls(config=config, database=database, models=models, worker=worker,
                   outcomes=outcomes, dispatcher=dispatcher, policy=policy, role=role,
                   bus=bus, limiter=backends.rate_limiter(config), telemetry=telemetry)

    async def start(self) -> None:
        await self.database.open()
        await self.models.start([] if self.worker is None
                                else [spec.slug for spec in self.worker.models
                                      if not on_demand(spec)])
        if self.role == "all" and not self.database.shared:
            await self._fail_unserved()
        await self.outcomes.reconcile()  # before the first sweep removes any expired job
        if self.worker is not None:
            self.worker.start()
            self._idle_watch = asyncio.create_task(self._stop_when_idle(self.worker))
        else:
            self._housekeeping = asyncio.create_task(self._housekeep(), name="housekeeping")
        if self.role != "worker":
            self.batch_keeper.start()
        self.dispatcher.start()

    async def _stop_when_idle(self, worker: Worker) -> None:
        await worker.idle_exit.wait()
        self.on_idle_exit()

    async def _housekeep(self) -> None:
        """What a worker's loop does between claims, for a node without a worker."""
        interval = min(self.config.server.sweep_interval, self.config.server.lease_seconds / 2)
        while True:
            try:
                await self.outcomes.after_sweep(await self.store.sweep())
            except Exception:
                log.exception("housekeeping failed; retrying")
            await asyncio.sleep(interval)

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
        if self.worker is not None:
            self.worker.drain()

    async def drain(self) -> None:
        """Stop admitting, and return once the running jobs have ended or the grace period
        has passed."""
        self.begin_drain()
        if self.worker is not None:
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
        if self.worker is not None:
            await self.worker.stop(self.grace_left())
        for task in (self._housekeeping, self._idle_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.batch_keeper.stop()
        await self.dispatcher.stop()
        await self.models.close()
        await self.store.close()
        await self.limiter.close()
        await self.bus.close()
        self.offload.close()
        await self.admitter.close()
        await self.database.close()

    async def model_states(self) -> dict[str, dict[str, Any]]:
        """Each model's state (see :class:`stratus.protocol.models.ModelState`): its
        engine's here; on an API node, what the live workers report (ready if any is), or
        ``unloaded`` when no live worker serves it."""
        states = {spec.slug: spec.state() for spec in self.models}
        if self.worker is not None:
            return {**states, **{spec.slug: self.worker.model_state(spec)
                                 for spec in self.worker.models}}
        reported = await self.store.model_health()
        for slug in states:
            reports = reported.get(slug)
            states[slug] = _best(reports) if reports else {
                "state": "unloaded", "next_probe_at": None,
                "reason": "no live worker serves this model: its requests wait QUEUED until "
                          "one starts (stratus worker, or stratus autoscale)"}
        return states

    async def queued_model_state(self, record: JobRecord) -> dict[str, Any] | None:
        """The state of a QUEUED job's model (a job waiting for a load says so); None for
        any other job."""
        if record.status is not Status.QUEUED:
            return None
        try:
            return (await self.model_states()).get(record.model)
        except Exception:  # (the workers' reports cannot be read): the status without it
            log.warning("model states unavailable", exc_info=True)
            return None

    @property
    def ready(self) -> bool:
        """Admitting (and, with a worker here, running jobs)."""
        return not self.draining and (self.worker is None or self.worker.alive)

    # -- job operations --------------------------------------------------------------------

    def check_admitting(self) -> None:
        if self.draining:
            raise Unavailable("this server is shutting down: retry on another node or shortly",
                              headers={"Retry-After": "5"})

    async def submit(self, sub: Submission) -> tuple[Admission, Normalized | None]:
        """Admit a request and queue its job (see :class:`stratus.admission.Admitter`)."""
        self.check_admitting()
        self.check_scope(sub.caller.key, sub.spec, sub.requested_model)
        return await self.admitter.submit(sub)

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
        """The job once it has ended, or as it is at timeout."""
        if record.status.is_terminal() or timeout <= 0:
            return record
        ended = await self.store.wait_until_ended(record.id, timeout)
        if ended is None:
            raise self._unknown(record.id)
        return ended

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
            self.telemetry.record_ended(record)  # (one that ran is its worker's to count)
            await self.outcomes.settle(record)
        return record, cancelled

    async def _settle_all(self, records: list[JobRecord]) -> None:
        """Settle jobs that ended without running (a batch's, cancelled or expired)."""
        for record in records:
            self.telemetry.record_ended(record)
            await self.outcomes.settle(record)

    async def _settle_ids(self, job_ids: list[str]) -> None:
        records = [await self.store.get(job_id) for job_id in job_ids]
        await self._settle_all([record for record in records if record is not None])

    def _unknown(self, job_id: str) -> NotFound:
        ttl = self.config.server.result_ttl
        return NotFound(
            f"unknown request id {job_id!r}: it does not exist, belongs to another account, "
            f"or its result expired (results are kept {ttl:g} s)"
        )

