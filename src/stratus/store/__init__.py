"""Job store: the queue, job state and results (embedded: SQLite)."""

from stratus.store._types import (
    Claim,
    ErrorType,
    IdempotencyConflict,
    IdempotentReplay,
    JobRecord,
    JobStore,
    Message,
    Metrics,
    NewJob,
    Priority,
    QueueFull,
    Status,
    SweepReport,
)
from stratus.store.sqlite import SqliteJobStore

__all__ = [
    "Claim",
    "ErrorType",
    "IdempotencyConflict",
    "IdempotentReplay",
    "JobRecord",
    "JobStore",
    "Message",
    "Metrics",
    "NewJob",
    "Priority",
    "QueueFull",
    "SqliteJobStore",
    "Status",
    "SweepReport",
]
