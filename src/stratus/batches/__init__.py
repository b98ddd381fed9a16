"""Message Batches: many requests submitted at once, run behind interactive traffic."""

from stratus.batches._admission import BatchAdmitter
from stratus.batches._keeper import BatchKeeper
from stratus.batches._types import (
    BatchRecord,
    BatchStore,
    Counts,
    Due,
    NewBatch,
    ProcessingStatus,
    ResultRow,
)
from stratus.batches.sqlite import SqliteBatches

__all__ = ["BatchAdmitter", "BatchKeeper", "BatchRecord", "BatchStore", "Counts", "Due",
           "NewBatch", "ProcessingStatus", "ResultRow", "SqliteBatches"]
