"""Admission: a checked request becomes a queued job, or is refused having taken nothing.

What is cheap comes first and what takes something last:

1. an ``Idempotency-Key`` used before answers with the earlier job, before any limit or
   credit is looked at (submits with the same key wait for one another in this process, so
   a retry that arrives while the first is still being admitted is answered the same);
2. one request of the key's requests-per-minute is taken, and its tokens-per-minute looked
   at (429): a key out of requests never gets its body worked on, and a key's concurrent
   admissions are bounded by its limit;
3. an account that could not pay for a single token is refused (406);
4. ``prepare`` checks the body off the event loop; image URLs of a vision model are
   fetched (400 if they may not be); the engine counts the tokens;
5. the content policy (the job starts FAILED), the webhook URL (400, also when its host
   does not resolve within 10 s);
6. the tokens are taken; the credits are reserved (406), the request recorded and the job
   queued (429 when the model's queue is full) in one transaction.

A request refused after step 2 gets back what it took: only admitted requests count.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from stratus._offload import Offload
from stratus.accounts import Accounts, Caller, Opening, to_nano, to_usd
from stratus.backends import Admit
from stratus.config import Config
from stratus.engines import GenerationRequest
from stratus.errors import (
    InsufficientCredits,
    InvalidRequest,
    NotFound,
    RateLimited,
    UnprocessableRequest,
)
from stratus.limits import LimitState, RateLimiter
from stratus.models import ModelSpec
from stratus.normalize import Checked, ImageFetcher, Normalized, fit
from stratus.outcomes import Outcomes
from stratus.policy import ContentPolicy
from stratus.store import (
    IdempotencyConflict,
    IdempotentReplay,
    JobRecord,
    JobStore,
    NewJob,
    QueueFull,
    Status,
)
from stratus.telemetry import Telemetry
from stratus.webhooks import check_url


@dataclass(frozen=True, slots=True)
class Submission:
    """A request as a surface hands it to admission: the same for every surface.

    ``prepare`` checks the body (run off the event loop unless the body is small:
    ``body_size`` bytes); its tokens are counted after, by the model's engine. ``body``: the
    parsed JSON, what an ``Idempotency-Key`` is bound to. ``stream``: the body asks for a
    stream (for a replay, whose body is not worked on again). ``wants_result``: the caller
    waits for the answer (a sync route), so a replay of a request whose result has expired
    is a 404 rather than its bare status."""

    caller: Caller
    spec: ModelSpec
    requested_model: str  # the model as the client named it
    prepare: Callable[[], Checked]
    request_id: str
    body: Any
    idempotency_key: str | None = None
    stream: bool = False
    webhook: str | None = None
    wants_result: bool = True
    body_size: int | None = None
    user_id: str | None = None  # the client's end user, kept in the request's history


@dataclass(frozen=True, slots=True)
class Admission:
    """A submitted request's job, and the state of the key's rate limits after it."""

    record: JobRecord
    limits: LimitState | None


def body_hash(idempotency_key: str, requested_model: str, body: Any) -> str:
    """What an idempotency key is bound to: the model as requested and the body."""
    if not 1 <= len(idempotency_key) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
    canonical = json.dumps([requested_model, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _opening(caller: Caller, spec: ModelSpec, job: NewJob, normalized: Normalized,
             webhook: str | None, user_id: str | None) -> Opening:
    """The request's history row, holding its worst case: input + max_tokens at the
    model's prices (nothing for a request the policy blocked)."""
    cfg, max_tokens = spec.config, normalized.request.max_tokens
    worst = 0.0 if job.blocked else cfg.cost_usd(normalized.input_tokens, max_tokens)
    return Opening(
        request_id=job.id, account_id=caller.account.id, key_id=caller.key.id,
        model=job.requested_model, slug=spec.slug, reserve=to_nano(worst),
        reserve_note=(f"{normalized.input_tokens} input tokens + max_tokens {max_tokens} at "
                      f"${cfg.price_input:g} / ${cfg.price_output:g} per million"),
        webhook_url=webhook, user_id=user_id)


class _Taken:
    """What a request has taken of its key's limits, to give back if it is refused."""

    def __init__(self, limiter: RateLimiter, caller: Caller) -> None:
        self._limiter = limiter
        self._key = caller.key
        self.request: LimitState | None = None
        self.tokens: LimitState | None = None
        self._tokens_taken = 0

    def _limits(self, requests: bool, tokens: bool) -> dict[str, int | None]:
        options = self._key.options
        return {"requests_per_minute": options.requests_per_minute if requests else None,
                "tokens_per_minute": options.tokens_per_minute if tokens else None}

    async def take_request(self) -> None:
        self.request = await self._limiter.admit(self._key.id, tokens=0,
                                                 **self._limits(True, False))
        try:  # a key whose tokens are used up is refused now, not after the work
            await self._limiter.check(self._key.id, tokens=1, **self._limits(False, True))
        except BaseException:
            await self.give_back()
            raise

    async def take_tokens(self, tokens: int) -> None:
        self.tokens = await self._limiter.admit(self._key.id, tokens=tokens,
                                                **self._limits(False, True))
        self._tokens_taken = tokens

    async def give_back(self) -> None:
        await self._limiter.refund(self._key.id, tokens=self._tokens_taken,
                                   **self._limits(True, self._tokens_taken > 0))
        self.request = self.tokens = None

    @property
    def state(self) -> LimitState | None:
        requests = self.request.requests if self.request else None
        tokens = self.tokens.tokens if self.tokens else None
        return None if requests is None and tokens is None else LimitState(requests, tokens)


class Admitter:
    def __init__(self, config: Config, store: JobStore, accounts: Accounts, admit: Admit,
                 limiter: RateLimiter, policy: ContentPolicy, offload: Offload,
                 outcomes: Outcomes, telemetry: Telemetry | None = None) -> None:
        self._config = config
        self._store = store
        self._accounts = accounts
        self._open_and_queue = admit
        self._limiter = limiter
        self._policy = policy
        self._offload = offload
        self._outcomes = outcomes
        self._telemetry = telemetry
        self._images = ImageFetcher(allow_private=config.images.allow_private,
                                    timeout=config.images.fetch_timeout)
        self._same_key: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @property
    def images(self) -> ImageFetcher:
        """What fetches image URLs at admission (Message Batches use it too)."""
        return self._images

    async def submit(self, sub: Submission) -> tuple[Admission, Normalized | None]:
        """The job and the checked request (None only for a ``/v2`` replay of a request
        whose record has expired)."""
        key = sub.idempotency_key
        if key is None:
            return await self._admit(sub, None)
        digest = await self._offload.run(body_hash, key, sub.requested_model, sub.body,
                                         size=sub.body_size)
        async with self._one_at_a_time(sub.caller.account.id, key):
            earlier = await self._replay(sub.caller, key, digest, sub.wants_result)
            if earlier is not None:
                return (Admission(earlier, None),
                        await self._replayed(sub.spec, earlier, sub.stream))
            return await self._admit(sub, digest)

    async def _admit(self, sub: Submission,
                     digest: str | None) -> tuple[Admission, Normalized]:
        caller, spec = sub.caller, sub.spec
        taken = _Taken(self._limiter, caller)
        await taken.take_request()
        try:
            _check_some_credit(caller, spec)
            checked = await self._offload.run(sub.prepare, size=sub.body_size)
            normalized = await fit(checked, spec, self._images)
            request = normalized.request
            blocked = self._policy.input_violation(request)
            webhook = sub.webhook
            if webhook is not None:
                webhook = await check_url(webhook,
                                          allow_private=self._config.webhooks.allow_private)
            await taken.take_tokens(normalized.input_tokens + request.max_tokens)
            job = NewJob(id=sub.request_id, account_id=caller.account.id, model=spec.slug,
                         requested_model=sub.requested_model,
                         request=request.model_dump(mode="json"),
                         idempotency_key=sub.idempotency_key, body_hash=digest,
                         blocked=blocked, max_queue=spec.config.max_queue,
                         input_tokens=normalized.input_tokens)
            record, created = await self._queue(caller, spec, job, normalized, webhook,
                                                sub.wants_result, sub.user_id)
        except BaseException:
            await asyncio.shield(taken.give_back())
            raise
        if not created:  # the same key and body raced in: the earlier job, not a new one
            await taken.give_back()
            return Admission(record, None), normalized
        return Admission(record, taken.state), normalized

    async def close(self) -> None:
        await self._images.close()

    async def _queue(self, caller: Caller, spec: ModelSpec, job: NewJob,
                     normalized: Normalized, webhook: str | None, wants_result: bool,
                     user_id: str | None) -> tuple[JobRecord, bool]:
        """Reserve the credits, record the request and queue its job, in one transaction:
        the request's history row and its job exist together or not at all."""
        try:
            record, created = await self._open_and_queue(
                _opening(caller, spec, job, normalized, webhook, user_id), job)
        except IdempotencyConflict as exc:
            raise _idempotency_conflict(job.idempotency_key, exc.job_id) from None
        except IdempotentReplay as exc:
            return await self._expired_replay(caller, exc.job_id, wants_result), False
        except QueueFull as exc:
            raise _queue_full(spec, exc.depth) from None
        if created and record.status.is_terminal():  # blocked by the content policy
            if self._telemetry is not None:
                self._telemetry.record_ended(record)
            await self._outcomes.settle(record)
        return record, created

    # -- idempotency ------------------------------------------------------------------------

    @asynccontextmanager
    async def _one_at_a_time(self, account_id: str, key: str) -> AsyncIterator[None]:
        """Submits with the same idempotency key wait for one another (in this process)."""
        name = (account_id, key)
        lock, users = self._same_key.get(name, (asyncio.Lock(), 0))
        self._same_key[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._same_key[name]
            if users == 1:
                del self._same_key[name]
            else:
                self._same_key[name] = (lock, users - 1)

    async def _replay(self, caller: Caller, idempotency_key: str, digest: str,
                      wants_result: bool) -> JobRecord | None:
        """The job an ``Idempotency-Key`` was first used for, if it was."""
        found = await self._store.idempotent(caller.account.id, idempotency_key)
        if found is None:
            return None
        job_id, first_digest = found
        if first_digest != digest:
            raise _idempotency_conflict(idempotency_key, job_id)
        record = await self._store.get(job_id)
        if record is None or record.account_id != caller.account.id:
            return await self._expired_replay(caller, job_id, wants_result)
        return record

    async def _replayed(self, spec: ModelSpec, record: JobRecord,
                        stream: bool) -> Normalized | None:
        """The checked request of an earlier job, without working on the body again."""
        if not record.request:
            return None  # its record has expired: only its status is known
        request = GenerationRequest.model_validate(record.request)
        input_tokens = record.input_tokens
        if input_tokens is None:  # a job queued before its count was kept
            input_tokens = await spec.engine.count_tokens(request) if stream else 0
        return Normalized(request=request, input_tokens=input_tokens, stream=stream)

    async def _expired_replay(self, caller: Caller, job_id: str,
                              wants_result: bool) -> JobRecord:
        """A replay of a request whose job record has expired: never run (or charged)
        again. Its status comes from the account's history; its result is gone (404)."""
        entry = await self._accounts.request(caller.account.id, job_id)
        if wants_result or entry is None:
            ttl = self._config.server.result_ttl
            raise NotFound(
                f"this Idempotency-Key was used for request {job_id}, which has ended and "
                f"whose result has expired (results are kept {ttl:g} s); it is not run "
                "again: use a new key for a new request", extra={"request_id": job_id})
        return JobRecord(
            id=job_id, account_id=caller.account.id, model=entry.slug,
            requested_model=entry.model, status=Status(entry.status), request={},
            created_at=entry.created_at, attempts=0, started_at=entry.started_at,
            completed_at=entry.completed_at, error=entry.error, error_type=entry.error_type)


MAX_USER_ID = 256


def user_id_of(value: object, field: str) -> str | None:
    """The end user a client names (``metadata.user_id``, OpenAI's ``user``), checked."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_USER_ID:
        raise InvalidRequest(f"{field} must be a string of at most {MAX_USER_ID} characters")
    return value or None


def _check_some_credit(caller: Caller, spec: ModelSpec) -> None:
    """406 before the body is worked on when the account could not pay for even one
    output token (the full worst case is reserved once the request is known)."""
    available = caller.account.available
    if available is not None and available < to_nano(spec.config.cost_usd(0, 1)):
        raise InsufficientCredits(
            f"insufficient credits: account {caller.account.name!r} has "
            f"${to_usd(max(available, 0)):.6f} available: ask an admin to add credits",
            extra={"credits_available": to_usd(max(available, 0))})


def _idempotency_conflict(idempotency_key: str | None, job_id: str) -> UnprocessableRequest:
    return UnprocessableRequest(
        f"Idempotency-Key {idempotency_key!r} was already used with a different "
        f"request (request_id {job_id}): use a new key for a new request",
        extra={"request_id": job_id})


def _queue_full(spec: ModelSpec, depth: int) -> RateLimited:
    return RateLimited(
        f"queue full: model {spec.slug!r} already has {depth} requests waiting "
        f"(max_queue {spec.config.max_queue}); retry later",
        retry_after=max(1.0, spec.config.execution_timeout / 60))
