"""Job states, records, and the ``JobStore`` protocol every backend implements."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Status(enum.StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    def is_terminal(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED)


class ErrorType(enum.StrEnum):
    """Why a job ended FAILED."""

    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ENGINE = "engine_error"
    WORKER_LOST = "worker_lost"
    POLICY = "content_policy"
    INVALID = "invalid_request"  # the engine (an upstream) refused the request as invalid
    EXPIRED = "expired"  # a batch's request still queued when the batch expired
    NOT_FOUND = "not_found"  # a batch's request named an unknown model
    PERMISSION = "permission"  # a batch's request named a model its key may not use


class Priority(enum.IntEnum):
    """Which queued jobs are claimed first: the lower value, then the older job."""

    INTERACTIVE = 0
    BATCH = 1  # a Message Batch's requests: served when no interactive job waits


@dataclass(frozen=True, slots=True)
class Metrics:
    """What a job's generation measured, and what it cost (USD), stored with the job."""

    queue_ms: float = 0.0
    inference_ms: float = 0.0
    ttft_ms: float = 0.0  # from the start of inference to the first text
    input_tokens: int = 0
    cached_input_tokens: int = 0  # of the input, read from the prompt cache
    output_tokens: int = 0
    output_tokens_per_s: float | None = None
    cost: float = 0.0
    cold_start_ms: float | None = None  # the model's load, on the job that waited for it

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _METRICS}
        if self.cold_start_ms is None:
            del data["cold_start_ms"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metrics:
        return cls(**{name: data[name] for name in _METRICS if data.get(name) is not None})


_METRICS = tuple(Metrics.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Message:
    """A job's answer as stored: the Anthropic message it is served as."""

    id: str
    model: str  # as the client asked for it
    content: tuple[dict[str, Any], ...]  # Anthropic content blocks
    stop_reason: str | None
    stop_sequence: str | None = None
    input_tokens: int = 0  # the whole prompt, cached part included
    output_tokens: int = 0
    cached_input_tokens: int = 0  # of the input, read from the prompt cache

    @property
    def text(self) -> str:
        return "".join(block.get("text", "") for block in self.content
                       if block.get("type") == "text")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "role": "assistant",
                "content": [dict(block) for block in self.content], "model": self.model,
                "stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence,
                "usage": {"input_tokens": self.input_tokens,
                          "output_tokens": self.output_tokens,
                          "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": self.cached_input_tokens,
                          "service_tier": "standard"}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        usage = data.get("usage") or {}
        return cls(id=data["id"], model=data["model"], content=tuple(data["content"]),
                   stop_reason=data.get("stop_reason"), stop_sequence=data.get("stop_sequence"),
                   input_tokens=usage.get("input_tokens", 0),
                   output_tokens=usage.get("output_tokens", 0),
                   cached_input_tokens=usage.get("cache_read_input_tokens") or 0)


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    account_id: str
    model: str
    requested_model: str
    request: dict[str, Any]
    idempotency_key: str | None = None
    body_hash: str | None = None
    blocked: str | None = None  # why the job starts FAILED (the content policy's error)
    blocked_type: str = ErrorType.POLICY.value  # the error type of a job that starts FAILED
    max_queue: int | None = None  # refuse (QueueFull) if the model has this many interactive
    input_tokens: int | None = None  # the prompt's tokens, as counted at admission
    priority: Priority = Priority.INTERACTIVE
    retain: float | None = None  # seconds its record is kept once ended (None: the store's)
    batch_id: str | None = None  # the Message Batch it belongs to, and its custom_id there
    custom_id: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    account_id: str
    model: str
    requested_model: str
    status: Status
    request: dict[str, Any]
    created_at: float
    attempts: int
    started_at: float | None = None
    completed_at: float | None = None
    expires_at: float | None = None
    result: Message | None = None
    metrics: Metrics | None = None
    error: str | None = None
    error_type: str | None = None
    queue_position: int | None = None
    input_tokens: int | None = None  # as counted at admission (None: not recorded)
    handbacks: int = 0  # times a busy engine handed it back to the queue

    @property
    def cost(self) -> float:
        """USD the job is charged: a COMPLETED job's cost; a cancelled one's for the tokens
        it had generated when it was stopped; nothing for any other FAILED job."""
        if self.metrics is None or not self.status.is_terminal():
            return 0.0
        if self.status is Status.COMPLETED or self.error_type == ErrorType.CANCELLED:
            return self.metrics.cost
        return 0.0


@dataclass(frozen=True, slots=True)
class Claim:
    """A job a worker holds, with the lease token that proves it still holds it."""

    job: JobRecord
    token: str
    owner: str = ""  # the worker holding it


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class IdempotentReplay(Exception):
    """The idempotency key was used before with the same body, but that job's record has
    expired: the request must not run again."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class QueueFull(Exception):
    """The model's queue already holds ``NewJob.max_queue`` jobs."""

    def __init__(self, depth: int) -> None:
        super().__init__(depth)
        self.depth = depth


@dataclass(frozen=True, slots=True)
class SweepReport:
    requeued: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    expired: int = 0


class JobStore(Protocol):
    """Queue, job state and results.

    Delivery is **at least once**: a claimed job whose lease lapses (its worker died) is handed
    out again, up to ``max_attempts`` claims in all. Completion is **exactly once**: only the
    holder of the current lease can complete or fail a job, and only while it is PROCESSING.
    """

    async def submit(self, job: NewJob, before_insert: Any = None) -> tuple[JobRecord, bool]:
        """Queue ``job``; returns ``(record, created)``. ``before_insert`` (the backend's own
        kind of callable, taking its connection) runs in the same transaction just before the
        insert: admission uses it to reserve the request's credits with the job. With an
        idempotency key already used for the same body, returns the earlier job and
        ``created=False`` (or raises :class:`IdempotentReplay` if its record expired); with
        another body, raises
        :class:`IdempotencyConflict`. With ``job.max_queue`` set, the check of the model's
        queue and the insert are one step: :class:`QueueFull` if it is full."""
        ...

    async def submit_many(self, jobs: Sequence[NewJob], before_insert: Any = None) -> None:
        """Queue every job of ``jobs`` (or none) in one transaction, with ``before_insert``
        as in :meth:`submit`: for a batch, whose jobs have no idempotency key and no
        ``max_queue``."""
        ...

    async def idempotent(self, account_id: str, key: str) -> tuple[str, str] | None:
        """``(job_id, body_hash)`` the key was first used for, within its window (24 h),
        whether or not the job's record still exists."""
        ...

    async def get(self, job_id: str, *, expired: bool = False) -> JobRecord | None:
        """The job, or None if unknown or past its retention (``expired=True``: also a
        record past its retention that is not yet deleted, for settling it)."""
        ...

    async def queued(self, model: str) -> int:
        """How many jobs of ``model`` wait in the queue."""
        ...

    async def waiting(self, models: Collection[str]) -> set[str]:
        """Those of ``models`` with at least one job QUEUED (one indexed look each)."""
        ...

    async def queue_stats(self) -> dict[str, tuple[int, float]]:
        """By model with jobs waiting: how many, and how long the oldest has waited (s)."""
        ...

    async def claim(self, models: Collection[str], worker_id: str) -> Claim | None: ...

    async def report_health(self, worker_id: str, health: dict[str, dict[str, Any]]) -> None:
        """What a worker's engines say of themselves (by model: ``ready``, or ``cooldown``
        with why and until when), for processes that run no engine (an API node)."""
        ...

    async def model_health(self) -> dict[str, list[dict[str, Any]]]:
        """By model, what each live worker last reported of it (empty where workers share
        the process with the API: its own engines say it)."""
        ...

    async def heartbeat(self, claim: Claim) -> bool: ...

    async def complete(self, claim: Claim, result: Message,
                       metrics: Metrics) -> JobRecord | None:
        """End the job COMPLETED if ``claim`` still holds it; the ended record, or None."""
        ...

    async def fail(self, claim: Claim, error: str, error_type: str) -> JobRecord | None:
        """End the job FAILED if ``claim`` still holds it; the ended record, or None."""
        ...

    async def record_usage(self, claim: Claim, metrics: Metrics) -> bool:
        """Attach what a cancelled job had generated (its metrics, with the cost) to it,
        once, by the worker that held it. False if the job was not cancelled under this
        claim."""
        ...

    async def fail_unserved(self, models: Collection[str], error: str) -> list[str]:
        """End FAILED every job, QUEUED or held by a worker that is gone, of a model not in
        ``models`` (removed from the configuration); returns their ids. For a process that
        runs every worker of the store (the embedded server), at its start."""
        ...

    async def release(self, claim: Claim, busy: bool = False) -> bool:
        """Hand a held job back to the queue without counting the attempt (shutdown;
        ``busy``: its engine could not take it now, counted in ``handbacks``)."""
        ...

    async def cancel(self, job_id: str) -> tuple[JobRecord | None, bool]:
        """End a QUEUED or PROCESSING job FAILED/cancelled. Returns the record as it is after
        the call (None if unknown) and whether this call ended it. A job cancelled while
        PROCESSING (``started_at`` set) is settled by its worker, which first records what
        it generated (:meth:`record_usage`)."""
        ...

    async def end_queued(self, job_ids: Collection[str], error: str,
                         error_type: str) -> list[JobRecord]:
        """End FAILED those of ``job_ids`` that are still QUEUED (a batch cancelled or
        expired); returns the records this call ended, for their settlement."""
        ...

    async def wait_for_change(self, job_id: str, status: Status,
                              timeout: float) -> JobRecord | None:
        """Return once the job's status is no longer ``status``, or ``timeout`` passes."""
        ...

    async def wait_until_ended(self, job_id: str, timeout: float) -> JobRecord | None:
        """Return once the job has ended (COMPLETED or FAILED), or as it is at ``timeout``;
        only its end wakes the waiter."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when a job may have become claimable, or after ``timeout``."""
        ...

    async def sweep(self) -> SweepReport:
        """Re-queue jobs whose lease lapsed, fail those out of attempts, drop expired ones."""
        ...

    async def close(self) -> None: ...
