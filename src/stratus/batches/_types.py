"""Message Batches: records, and the ``BatchStore`` protocol each database implements.

A batch is a row of its own plus one job per request (``jobs.batch_id``, with the request's
``custom_id``): the queue, the workers, the charges and the history are those of any job.
What a batch reports is read from its jobs, so it never disagrees with them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypeVar

from stratus.store import ErrorType, Status

ProcessingStatus = Literal["in_progress", "canceling", "ended"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NewBatch:
    id: str
    account_id: str
    key_id: str
    total: int
    expire_after: float  # seconds: requests not started by then end ``expired``
    retention: float  # seconds from creation that the batch and its results are kept


@dataclass(frozen=True, slots=True)
class Counts:
    """The batch's requests by state. ``open``: QUEUED or PROCESSING."""

    open: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    def add(self, status: str, error_type: str | None, n: int) -> Counts:
        if status in (Status.QUEUED, Status.PROCESSING):
            field = "open"
        elif status == Status.COMPLETED:
            field = "succeeded"
        elif error_type == ErrorType.CANCELLED:
            field = "canceled"
        elif error_type == ErrorType.EXPIRED:
            field = "expired"
        else:
            field = "errored"
        return replace(self, **{field: getattr(self, field) + n})


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    account_id: str
    key_id: str
    total: int
    created_at: float
    expires_at: float
    retain_until: float
    cancel_initiated_at: float | None
    counts: Counts
    last_ended_at: float | None  # when its last request ended

    @property
    def processing_status(self) -> ProcessingStatus:
        if self.counts.open == 0:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    @property
    def ended_at(self) -> float | None:
        if self.counts.open:
            return None
        return self.last_ended_at or self.created_at


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One request of a batch, as its results file reports it."""

    seq: int
    custom_id: str
    status: Status
    result: str | None  # the stored message (JSON)
    error: str | None
    error_type: str | None


@dataclass(frozen=True, slots=True)
class Due:
    """A batch with requests to end: ``canceling`` (cancelled) or past its ``expires_at``."""

    id: str
    canceling: bool


class BatchStore(Protocol):
    async def get(self, account_id: str, batch_id: str) -> BatchRecord | None:
        """The batch, or None if unknown, another account's, or past its retention."""
        ...

    async def page(self, account_id: str, limit: int, *, before_id: str | None = None,
                   after_id: str | None = None) -> tuple[list[BatchRecord], bool]:
        """The account's batches, newest first: ``after_id``: older than that one;
        ``before_id``: newer. Returns the page and whether there are more beyond it."""
        ...

    async def begin_cancel(self, account_id: str, batch_id: str) -> BatchRecord | None:
        """Mark the batch cancelled (once); the batch as it is after, or None if unknown."""
        ...

    async def due(self) -> list[Due]:
        """Batches cancelled or expired that still have requests QUEUED or PROCESSING."""
        ...

    async def job_ids(self, batch_id: str, statuses: tuple[Status, ...],
                      limit: int) -> list[str]:
        """Up to ``limit`` ids of the batch's jobs in ``statuses``, oldest first."""
        ...

    async def results(self, batch_id: str, after_seq: int, limit: int) -> list[ResultRow]:
        """The batch's requests after ``after_seq``, in the order they were submitted."""
        ...

    async def delete(self, account_id: str, batch_id: str) -> bool:
        """Delete an ended batch with its jobs; False if unknown."""
        ...

    async def purge(self) -> int:
        """Delete batches past their retention, with their jobs; returns how many."""
        ...


def page_query(mark: str, before_id: str | None,
               after_id: str | None) -> tuple[str, list[str], str]:
    """What narrows a page of an account's batches (newest first) beyond its account, with
    ``mark`` the driver's placeholder: the condition, its arguments and the order to read in
    (``before_id``: newer ones, read upwards and turned round by :func:`page_of`)."""
    if after_id is not None:
        return f" AND seq < COALESCE((SELECT seq FROM batches WHERE id = {mark}), 0)", \
            [after_id], "DESC"
    if before_id is not None:
        return f" AND seq > COALESCE((SELECT seq FROM batches WHERE id = {mark}), 0)", \
            [before_id], "ASC"
    return "", [], "DESC"


def page_of(rows: list[T], limit: int, order: str) -> tuple[list[T], bool]:
    """The page of ``rows`` (read with one more than ``limit``), newest first, and whether
    more follow."""
    page = rows[:limit]
    if order == "ASC":
        page.reverse()
    return page, len(rows) > limit


def batch_row(batch: NewBatch, now: float) -> dict[str, Any]:
    return {"id": batch.id, "account": batch.account_id, "key": batch.key_id,
            "total": batch.total, "created": now, "expires": now + batch.expire_after,
            "retain": now + batch.retention}
