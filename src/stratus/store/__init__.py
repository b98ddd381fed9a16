"""Job store: the queue, job state and results (embedded: SQLite)."""

from stratus.store._types import (
    Claim,
    ErrorType,
    IdempotencyConflict,
    JobRecord,
    JobStore,
    NewJob,
    Status,
    SweepReport,
)
from stratus.store.sqlite import SqliteJobStore

__all__ = [
    "Claim",
    "ErrorType",
    "IdempotencyConflict",
    "JobRecord",
    "JobStore",
    "NewJob",
    "SqliteJobStore",
    "Status",
    "SweepReport",
]
