"""Everything one server process runs, and the job operations every HTTP surface shares."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stratus import backends
from stratus._offload import Offload
from stratus._sqlite import SqliteDB
from stratus.accounts import (
    Account,
    Accounts,
    ApiKey,
    Caller,
    Opening,
    SqliteAccounts,
    to_nano,
    to_usd,
)
from stratus.config import Config, ModelConfig
from stratus.errors import (
    InsufficientCredits,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UnprocessableRequest,
)
from stratus.limits import LimitState, LocalRateLimiter, RateLimiter
from stratus.models import ModelRegistry, ModelSpec
from stratus.normalize import Normalized
from stratus.outcomes import Outcomes
from stratus.policy import ContentPolicy
from stratus.store import (
    IdempotencyConflict,
    IdempotentReplay,
    JobRecord,
    JobStore,
    NewJob,
    QueueFull,
    SqliteJobStore,
    Status,
)
from stratus.streams import TokenBus
from stratus.webhooks import Dispatcher, check_url
from stratus.worker import Worker

PREPARE_THREADS = 2  # requests parsed, decoded and tokenized at once, off the event loop


@dataclass(frozen=True, slots=True)
class Admission:
    """A submitted request's job, and the state of the key's rate limits after it."""

    record: JobRecord
    limits: LimitState | None


def may_use(key: ApiKey, model: ModelConfig) -> bool:
    allowed = key.options.models
    return allowed is None or not {model.slug, *model.aliases}.isdisjoint(allowed)


def _body_hash(idempotency_key: str | None, requested_model: str, body: Any) -> str | None:
    """What an idempotency key is bound to: the model as requested and the body."""
    if idempotency_key is None:
        return None
    if not 1 <= len(idempotency_key) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
    canonical = json.dumps([requested_model, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _opening(caller: Caller, spec: ModelSpec, job: NewJob, normalized: Normalized,
             webhook: str | None) -> Opening:
    """The request's history row, holding its worst case: input + max_tokens at the
    model's prices (nothing for a request the policy blocked)."""
    cfg, max_tokens = spec.config, normalized.request.max_tokens
    worst = 0.0 if job.blocked else cfg.cost_usd(normalized.input_tokens, max_tokens)
    return Opening(
        request_id=job.id, account_id=caller.account.id, key_id=caller.key.id,
        model=job.requested_model, slug=spec.slug, reserve=to_nano(worst),
        reserve_note=(f"{normalized.input_tokens} input tokens + max_tokens {max_tokens} at "
                      f"${cfg.price_input:g} / ${cfg.price_output:g} per million"),
        webhook_url=webhook)


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
    offload: Offload = field(default_factory=lambda: Offload(PREPARE_THREADS))
    _db: SqliteDB | None = None
    draining: bool = field(default=False)
    _drain_deadline: float = 0.0

    @classmethod
    def embedded(cls, config: Config) -> Runtime:
        """API, worker and engines in one process, on SQLite under the data dir."""
        server = config.server
        db = SqliteDB(server.data_dir / "stratus.db")
        store = SqliteJobStore(db, lease_seconds=server.lease_seconds,
                               max_attempts=server.max_attempts, result_ttl=server.result_ttl,
                               idempotency_ttl=server.idempotency_ttl)
        accounts = SqliteAccounts(db, history_ttl=server.history_ttl)
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
                   bus=bus, limiter=backends.rate_limiter(config), _db=db)

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
                "was not run and not charged"):
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
        await self.worker.wait_idle(self._grace_left())

    def _grace_left(self) -> float:
        return max(0.0, self._drain_deadline - time.monotonic())

    async def stop(self) -> None:
        self.begin_drain()
        await self.worker.stop(self._grace_left())
        await self.dispatcher.stop()
        await self.models.close()
        await self.store.close()
        await self.limiter.close()
        self.offload.close()
        if self._db is not None:
            self._db.close()

    @property
    def ready(self) -> bool:
        return not self.draining and self.worker.alive

    # -- job operations --------------------------------------------------------------------

    async def submit(self, caller: Caller, spec: ModelSpec, requested_model: str,
                     prepare: Callable[[], Normalized], *, request_id: str,
                     idempotency_key: str | None, body: Any, webhook: str | None = None,
                     wants_result: bool = True) -> tuple[Admission, Normalized]:
        """Admit a request and queue its job. The order puts what is cheap first and what
        takes something last: the key's scope (403); an ``Idempotency-Key`` used before
        (the earlier job, checked before any limit or credit); the key's rate limits, looked
        at (429); ``prepare`` (the checked request, worked out off the event loop); the
        content policy (the job starts FAILED); the webhook URL (400); then the rate
        limits taken, the credits reserved (406) and the job queued (429 if the model's
        queue is full) — a request refused at that last step gets its limits back.

        ``wants_result``: the caller waits for the answer (a sync route), so a replay of a
        request whose result has expired is a 404 rather than its bare status."""
        if self.draining:
            raise Unavailable("this server is shutting down: retry on another node or shortly",
                              headers={"Retry-After": "5"})
        key = caller.key
        self.check_scope(key, spec, requested_model)
        body_hash = None
        if idempotency_key is not None:
            body_hash = await self.offload.run(_body_hash, idempotency_key, requested_model,
                                               body)
            earlier = await self._replay(caller, idempotency_key, body_hash, wants_result)
            if earlier is not None:
                return Admission(earlier, None), await self.offload.run(prepare)
        limits = {"requests_per_minute": key.options.requests_per_minute,
                  "tokens_per_minute": key.options.tokens_per_minute}
        await self.limiter.check(key.id, tokens=1, **limits)
        self._check_some_credit(caller, spec)
        normalized = await self.offload.run(prepare)
        request = normalized.request
        blocked = self.policy.input_violation(request)
        if webhook is not None:
            webhook = await check_url(webhook,
                                      allow_private=self.config.webhooks.allow_private)
        tokens = normalized.input_tokens + request.max_tokens
        state = await self.limiter.admit(key.id, tokens=tokens, **limits)
        job = NewJob(id=request_id, account_id=caller.account.id, model=spec.slug,
                     requested_model=requested_model, request=request.model_dump(mode="json"),
                     idempotency_key=idempotency_key, body_hash=body_hash, blocked=blocked,
                     max_queue=spec.config.max_queue)
        try:
            record, created = await self._queue(caller, spec, job, normalized, webhook,
                                                wants_result)
        except BaseException:
            await self.limiter.refund(key.id, tokens=tokens, **limits)
            raise
        if not created:  # the same key and body raced in: the earlier job, not a new one
            await self.limiter.refund(key.id, tokens=tokens, **limits)
            return Admission(record, None), normalized
        return Admission(record, state), normalized

    async def _queue(self, caller: Caller, spec: ModelSpec, job: NewJob,
                     normalized: Normalized, webhook: str | None,
                     wants_result: bool) -> tuple[JobRecord, bool]:
        """Reserve the credits and queue the job: the request's history row and its job
        exist together or not at all."""
        await self.accounts.open_request(_opening(caller, spec, job, normalized, webhook))
        try:
            record, created = await self.store.submit(job)
        except IdempotencyConflict as exc:
            await self.accounts.discard_request(job.id)
            raise self._idempotency_conflict(job.idempotency_key, exc.job_id) from None
        except IdempotentReplay as exc:
            await self.accounts.discard_request(job.id)
            record = await self._expired_replay(caller, exc.job_id, wants_result)
            return record, False
        except QueueFull as exc:
            await self.accounts.discard_request(job.id)
            raise self._queue_full(spec, exc.depth) from None
        except BaseException:
            await asyncio.shield(self._undo_open(job.id))
            raise
        if not created:
            await self.accounts.discard_request(job.id)
        elif record.status.is_terminal():
            await self.outcomes.settle(record)
        return record, created

    async def _replay(self, caller: Caller, idempotency_key: str, body_hash: str,
                      wants_result: bool) -> JobRecord | None:
        """The job an ``Idempotency-Key`` was first used for, if it was."""
        found = await self.store.idempotent(caller.account.id, idempotency_key)
        if found is None:
            return None
        job_id, first_hash = found
        if first_hash != body_hash:
            raise self._idempotency_conflict(idempotency_key, job_id)
        record = await self.store.get(job_id)
        if record is None or record.account_id != caller.account.id:
            return await self._expired_replay(caller, job_id, wants_result)
        return record

    async def _expired_replay(self, caller: Caller, job_id: str,
                              wants_result: bool) -> JobRecord:
        """A replay of a request whose job record has expired: never run (or charged)
        again. Its status comes from the account's history; its result is gone (404)."""
        entry = await self.accounts.request(caller.account.id, job_id)
        if wants_result or entry is None:
            ttl = self.config.server.result_ttl
            raise NotFound(
                f"this Idempotency-Key was used for request {job_id}, which has ended and "
                f"whose result has expired (results are kept {ttl:g} s); it is not run "
                "again: use a new key for a new request", extra={"request_id": job_id})
        return JobRecord(
            id=job_id, account_id=caller.account.id, model=entry.slug,
            requested_model=entry.model, status=Status(entry.status), request={},
            created_at=entry.created_at, attempts=0, started_at=entry.started_at,
            completed_at=entry.completed_at, error=entry.error, error_type=entry.error_type)

    @staticmethod
    def _check_some_credit(caller: Caller, spec: ModelSpec) -> None:
        """406 before the body is worked on when the account could not pay for even one
        output token (the full worst case is reserved once the request is known)."""
        available = caller.account.available
        if available is not None and available < to_nano(spec.config.cost_usd(0, 1)):
            raise InsufficientCredits(
                f"insufficient credits: account {caller.account.name!r} has "
                f"${to_usd(max(available, 0)):.6f} available: ask an admin to add credits",
                extra={"credits_available": to_usd(max(available, 0))})

    @staticmethod
    def _idempotency_conflict(idempotency_key: str | None, job_id: str) -> UnprocessableRequest:
        return UnprocessableRequest(
            f"Idempotency-Key {idempotency_key!r} was already used with a different "
            f"request (request_id {job_id}): use a new key for a new request",
            extra={"request_id": job_id})

    @staticmethod
    def _queue_full(spec: ModelSpec, depth: int) -> RateLimited:
        return RateLimited(
            f"queue full: model {spec.slug!r} already has {depth} requests waiting "
            f"(max_queue {spec.config.max_queue}); retry later",
            retry_after=max(1.0, spec.config.execution_timeout / 60))

    async def _undo_open(self, request_id: str) -> None:
        """The submit failed or was interrupted: forget the request unless its job was
        queued after all (then it is settled when the job ends, like any other)."""
        if await self.store.get(request_id) is None:
            await self.accounts.discard_request(request_id)

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

