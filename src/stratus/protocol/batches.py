"""Message Batches (``/v1/messages/batches``), as Anthropic's API defines them: the body of
a create, and the bodies every route answers with (built as dicts by the serving module).

Each request's ``params`` is a Messages body, checked as ``POST /v1/messages`` checks one when
the batch is created: a request that fails those checks does not fail the batch, it ends
``errored`` with the error that says why.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stratus.protocol.responses import AnthropicError, AnthropicMessage

CUSTOM_ID = r"^[a-zA-Z0-9_-]{1,64}$"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BatchRequest(_Wire):
    custom_id: str = Field(pattern=CUSTOM_ID,
                           description="yours, unique in the batch: how results are matched")
    params: dict[str, Any] = Field(description="a POST /v1/messages body (no stream)")


class CreateBatch(_Wire):
    requests: list[BatchRequest] = Field(min_length=1)


class RequestCounts(BaseModel):
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int


class MessageBatch(BaseModel):
    id: str
    type: Literal["message_batch"]
    processing_status: Literal["in_progress", "canceling", "ended"]
    request_counts: RequestCounts
    ended_at: str | None
    created_at: str
    expires_at: str
    archived_at: str | None
    cancel_initiated_at: str | None
    results_url: str | None


class MessageBatchList(BaseModel):
    data: list[MessageBatch]
    has_more: bool
    first_id: str | None
    last_id: str | None


class DeletedBatch(BaseModel):
    id: str
    type: Literal["message_batch_deleted"]


class Succeeded(BaseModel):
    type: Literal["succeeded"]
    message: AnthropicMessage


class Errored(BaseModel):
    type: Literal["errored"]
    error: AnthropicError


class Ended(BaseModel):
    type: Literal["canceled", "expired"]


class BatchResult(BaseModel):
    """One line of a batch's results (JSON Lines)."""

    custom_id: str
    result: Succeeded | Errored | Ended
