"""Everything one server process runs, and the job operations every HTTP surface shares."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from stratus._sqlite import SqliteDB
from stratus.accounts import Account, Accounts, ApiKey, Caller, Opening, SqliteAccounts, to_nano
from stratus.config import Config, ModelConfig
from stratus.errors import (
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UnprocessableRequest,
)
from stratus.limits import LimitState, RateLimiter
from stratus.models import ModelRegistry, ModelSpec
from stratus.normalize import Normalized
from stratus.outcomes import Outcomes
from stratus.policy import ContentPolicy
from stratus.store import IdempotencyConflict, JobRecord, JobStore, NewJob, SqliteJobStore
from stratus.streams import TokenBus
from stratus.webhooks import Dispatcher, check_url
from stratus.worker import Worker


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
    limiter: RateLimiter = field(default_factory=RateLimiter)
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
                   bus=bus, _db=db)

    async def start(self) -> None:
        await self.models.start()
        self.worker.start()
        self.dispatcher.start()

    def begin_drain(self) -> None:
        """Stop admitting and claiming; running jobs go on."""
        self.draining = True
        self.worker.drain()

    async def stop(self) -> None:
        self.begin_drain()
        await self.worker.stop(self.config.server.shutdown_grace)
        await self.dispatcher.stop()
        await self.models.close()
        await self.store.close()
        if self._db is not None:
            self._db.close()

    @property
    def ready(self) -> bool:
        return not self.draining and self.worker.alive

    # -- job operations --------------------------------------------------------------------

    async def submit(self, caller: Caller, spec: ModelSpec, requested_model: str,
                     normalized: Normalized, request_id: str, idempotency_key: str | None,
                     body: Any, webhook: str | None = None) -> Admission:
        """Admit a request and queue its job: the key's scope (403) and rate limits (429),
        the content policy (the job starts FAILED), the model's queue (429), the webhook
        URL (400), then the account's credits (406). Returns the job; with an idempotency
        key used before for the same body, the earlier job."""
        if self.draining:
            raise Unavailable("this server is shutting down: retry on another node or shortly",
                              headers={"Retry-After": "5"})
        key, request = caller.key, normalized.request
        self.check_scope(key, spec, requested_model)
        limits = self.limiter.admit(
            key.id, requests_per_minute=key.options.requests_per_minute,
            tokens_per_minute=key.options.tokens_per_minute,
            tokens=normalized.input_tokens + request.max_tokens)
        blocked = self.policy.input_violation(request)
        if blocked is None:
            await self._check_queue(spec)
        if webhook is not None:
            webhook = await check_url(webhook,
                                      allow_private=self.config.webhooks.allow_private)
        job = NewJob(id=request_id, account_id=caller.account.id, model=spec.slug,
                     requested_model=requested_model, request=request.model_dump(mode="json"),
                     idempotency_key=idempotency_key,
                     body_hash=_body_hash(idempotency_key, requested_model, body),
                     blocked=blocked)
        await self.accounts.open_request(_opening(caller, spec, job, normalized, webhook))
        try:
            record, created = await self.store.submit(job)
        except IdempotencyConflict as exc:
            await self.accounts.discard_request(request_id)
            raise UnprocessableRequest(
                f"Idempotency-Key {idempotency_key!r} was already used with a different "
                f"request (request_id {exc.job_id}): use a new key for a new request",
                extra={"request_id": exc.job_id},
            ) from None
        except BaseException:
            await asyncio.shield(self._undo_open(request_id))
            raise
        if not created:
            await self.accounts.discard_request(request_id)
        elif record.status.is_terminal():
            await self.outcomes.settle(record)
        return Admission(record, limits)

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

    async def _check_queue(self, spec: ModelSpec) -> None:
        depth = await self.store.queued(spec.slug)
        if depth >= spec.config.max_queue:
            raise RateLimited(
                f"queue full: model {spec.slug!r} already has {depth} requests waiting "
                f"(max_queue {spec.config.max_queue}); retry later",
                retry_after=max(1.0, spec.config.execution_timeout / 60))

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
        record, cancelled = await self.store.cancel(job_id)
        if cancelled and record is not None:
            await self.outcomes.settle(record)
        return record, cancelled

    def _unknown(self, job_id: str) -> NotFound:
        ttl = self.config.server.result_ttl
        return NotFound(
            f"unknown request id {job_id!r}: it does not exist, belongs to another account, "
            f"or its result expired (results are kept {ttl:g} s)"
        )

