"""A Message Batch's admission: every request checked, counted and reserved, then all of
its jobs queued with the batch in one transaction.

The batch as a whole is refused (400) only for its own shape: no requests, too many, a
``custom_id`` that is malformed or used twice. Each request's ``params`` is checked as
``POST /v1/messages`` checks a body; one that fails (a bad field, an unknown model, a model
the key may not use, a prompt over the context, blocked input) does not fail the batch: its
job starts FAILED with the error, and its result is ``errored``. The create call takes one
request of the key's requests per minute; its requests are not counted against the key's
tokens per minute (they run behind interactive traffic). The account's credits must cover
the worst case of every request together (406).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stratus._offload import Offload
from stratus.accounts import Caller, Opening, to_nano
from stratus.batches._types import NewBatch
from stratus.config import BatchesConfig
from stratus.errors import (
    InsufficientCredits,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceError,
)
from stratus.limits import RateLimiter
from stratus.models import ModelRegistry, ModelSpec
from stratus.normalize import Checked, ImageFetcher, check, fit, parse_model
from stratus.policy import ContentPolicy
from stratus.protocol.batches import BatchRequest
from stratus.protocol.messages import AnthropicMessagesRequest
from stratus.store import ErrorType, NewJob, Priority

AdmitBatch = Callable[[NewBatch, Sequence[Opening], Sequence[NewJob], str], Awaitable[None]]
CheckScope = Callable[..., None]
Ended = Callable[[list[str]], Awaitable[None]]  # settles jobs that started FAILED
FIT_AT_ONCE = 64  # requests counted concurrently


@dataclass(frozen=True, slots=True)
class _Checked:
    """One request of a batch after the checks that need no tokenizer."""

    custom_id: str
    model: str  # as the client named it ("" if params named none)
    spec: ModelSpec | None = None
    checked: Checked | None = None
    user_id: str | None = None
    error: ServiceError | None = None


def _error_type(error: ServiceError) -> str:
    if isinstance(error, NotFound):
        return ErrorType.NOT_FOUND.value
    if isinstance(error, PermissionDenied):
        return ErrorType.PERMISSION.value
    return ErrorType.INVALID.value


def check_shape(requests: Sequence[BatchRequest], limit: int) -> None:
    if len(requests) > limit:
        raise InvalidRequest(f"a batch holds at most {limit} requests (this one has "
                             f"{len(requests)}): split it")
    seen: set[str] = set()
    for i, item in enumerate(requests):
        if item.custom_id in seen:
            raise InvalidRequest(f"requests[{i}].custom_id {item.custom_id!r} is used by an "
                                 "earlier request: each custom_id must be unique in a batch")
        seen.add(item.custom_id)


class BatchAdmitter:
    def __init__(self, config: BatchesConfig, models: ModelRegistry, policy: ContentPolicy,
                 limiter: RateLimiter, offload: Offload, images: ImageFetcher,
                 admit_batch: AdmitBatch, check_scope: CheckScope,
                 ended: Ended) -> None:
        self._config = config
        self._models = models
        self._policy = policy
        self._limiter = limiter
        self._offload = offload
        self._images = images
        self._admit_batch = admit_batch
        self._check_scope = check_scope
        self._ended = ended

    async def submit(self, caller: Caller, requests: Sequence[BatchRequest],
                     body_size: int) -> NewBatch:
        check_shape(requests, self._config.max_requests)
        key = caller.key
        await self._limiter.admit(key.id, requests_per_minute=key.options.requests_per_minute,
                                  tokens_per_minute=None, tokens=0)
        checked = await self._offload.run(self._check_all, caller, requests, size=body_size)
        batch = NewBatch(id="msgbatch_" + uuid.uuid4().hex, account_id=caller.account.id,
                         key_id=key.id, total=len(requests),
                         expire_after=self._config.expire_after,
                         retention=self._config.retention)
        openings: list[Opening] = []
        jobs: list[NewJob] = []
        for start in range(0, len(checked), FIT_AT_ONCE):
            part = checked[start:start + FIT_AT_ONCE]
            made = await asyncio.gather(*(self._job(caller, batch, item) for item in part))
            for opening, job in made:
                openings.append(opening)
                jobs.append(job)
        try:
            await self._admit_batch(batch, openings, jobs, "the batch")
        except InsufficientCredits as exc:
            required, available = exc.extra["credits_required"], exc.extra["credits_available"]
            raise InsufficientCredits(
                f"insufficient credits: the batch's {len(jobs)} requests may cost up to "
                f"${required:.6f} together (each its input tokens + max_tokens at its model's "
                f"prices) but account {caller.account.name!r} has ${available:.6f} "
                "available: send fewer requests, lower max_tokens, or ask an admin to add "
                "credits", extra=exc.extra) from None
        await self._ended([job.id for job in jobs if job.blocked])
        return batch

    def _check_all(self, caller: Caller, requests: Sequence[BatchRequest]) -> list[_Checked]:
        return [self._check(caller, item) for item in requests]

    def _check(self, caller: Caller, item: BatchRequest) -> _Checked:
        model = item.params.get("model")
        name = model if isinstance(model, str) else ""
        try:
            if item.params.get("stream"):
                raise InvalidRequest("stream: a batch's requests are not streamed: leave "
                                     "stream out")
            body = parse_model(item.params, AnthropicMessagesRequest)
            spec = self._models.resolve(body.model)
            self._check_scope(caller.key, spec, body.model)
            metadata = body.metadata or {}
            user_id = metadata.get("user_id")
            return _Checked(item.custom_id, body.model, spec,
                            check(body.as_messages_request(), spec),
                            user_id if isinstance(user_id, str) else None)
        except ServiceError as exc:
            return _Checked(item.custom_id, name, error=exc)

    async def _job(self, caller: Caller, batch: NewBatch,
                   item: _Checked) -> tuple[Opening, NewJob]:
        failure = None if item.error is None else (item.error.message,
                                                   _error_type(item.error))
        job_request: dict[str, Any] = {}
        tokens: int | None = None
        reserve, note = 0, ""
        if failure is None and item.checked is not None and item.spec is not None:
            try:
                normalized = await fit(item.checked, item.spec, self._images)
            except ServiceError as exc:
                failure = (exc.message, _error_type(exc))
            else:
                request, tokens = normalized.request, normalized.input_tokens
                job_request = request.model_dump(mode="json")
                blocked = self._policy.input_violation(request)
                if blocked is not None:
                    failure = (blocked, ErrorType.POLICY.value)
                else:
                    reserve = to_nano(item.spec.config.cost_usd(tokens, request.max_tokens))
                    note = f"{tokens} input tokens + max_tokens {request.max_tokens}"
        request_id = str(uuid.uuid4())
        slug = item.spec.slug if item.spec is not None else ""
        opening = Opening(request_id=request_id, account_id=caller.account.id,
                          key_id=caller.key.id, model=item.model, slug=slug, reserve=reserve,
                          reserve_note=note, user_id=item.user_id)
        job = NewJob(id=request_id, account_id=caller.account.id, model=slug,
                     requested_model=item.model, request=job_request,
                     blocked=None if failure is None else failure[0],
                     blocked_type=ErrorType.POLICY.value if failure is None else failure[1],
                     input_tokens=tokens, priority=Priority.BATCH, retain=batch.retention,
                     batch_id=batch.id, custom_id=item.custom_id)
        return opening, job
