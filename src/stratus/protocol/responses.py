"""Response bodies of every surface, as the OpenAPI document describes them.

The routes build these bodies as plain dicts; these models state their shape (the job
responses of the queue surface are in :mod:`stratus.protocol.jobs`). Extra fields are allowed:
an error may carry more than its surface's required fields (a 406 says what is available).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from stratus.protocol.jobs import Metrics
from stratus.protocol.models import ModelState

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


# Errors, in the shape of each surface


class SegmindError(BaseModel):
    """An error on the Segmind surface and the account and admin routes."""

    error: str
    type: str
    request_id: str


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicError(BaseModel):
    """An error on ``/v1/messages`` and ``/v1/messages/count_tokens``."""

    type: Literal["error"]
    error: AnthropicErrorDetail


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """An error on ``/v1/chat/completions``."""

    error: OpenAIErrorDetail


# Messages


class TextContent(BaseModel):
    type: Literal["text"]
    text: str


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class AnthropicMessage(BaseModel):
    """The answer of a sync request on the Segmind and Anthropic surfaces."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[TextContent]
    model: str
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


# Anthropic's server-sent events (``event:`` name, ``data:`` one of these)


class MessageStart(BaseModel):
    type: Literal["message_start"]
    message: AnthropicMessage  # content empty, stop_reason null: the message so far


class ContentBlockStart(BaseModel):
    type: Literal["content_block_start"]
    index: int
    content_block: TextContent


class TextDelta(BaseModel):
    type: Literal["text_delta"]
    text: str


class ContentBlockDelta(BaseModel):
    type: Literal["content_block_delta"]
    index: int
    delta: TextDelta


class ContentBlockStop(BaseModel):
    type: Literal["content_block_stop"]
    index: int


class MessageDeltaBody(BaseModel):
    stop_reason: StopReason | None
    stop_sequence: str | None


class OutputUsage(BaseModel):
    output_tokens: int


class MessageDelta(BaseModel):
    type: Literal["message_delta"]
    delta: MessageDeltaBody
    usage: OutputUsage


class MessageStop(BaseModel):
    type: Literal["message_stop"]


class Ping(BaseModel):
    type: Literal["ping"]


class TokenCount(BaseModel):
    """``POST /v1/messages/count_tokens``."""

    input_tokens: int


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatCompletionChoice(BaseModel):
    index: int
    message: ChatCompletionMessage
    finish_reason: Literal["stop", "length", "tool_calls"]
    logprobs: None


class ChatCompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """``POST /v1/chat/completions`` without streaming."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: ChatCompletionUsage


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop", "length", "tool_calls"] | None
    logprobs: None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` line of a streamed chat completion (the last one is ``[DONE]``); with
    ``stream_options.include_usage``, a chunk without choices carries the usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: ChatCompletionUsage | None = None


# The account, keys and credits


class Credits(BaseModel):
    """An account's credits in USD; ``balance`` and ``available`` are null when unlimited."""

    currency: Literal["USD"]
    unlimited: bool
    balance: float | None
    reserved: float
    available: float | None


class RateLimits(BaseModel):
    requests_per_minute: int | None
    tokens_per_minute: int | None


class KeyInfo(BaseModel):
    """A key as the API shows it: never its secret."""

    id: str
    name: str
    prefix: str
    account: str
    admin: bool
    models: list[str] | None
    rate_limits: RateLimits
    created_at: str | None
    revoked_at: str | None


class WebhookInfo(BaseModel):
    """The account's default webhook URL (null: none) and its signing secret."""

    url: str | None
    secret: str


class AccountInfo(BaseModel):
    """``GET /v1/account``: the caller's account and key."""

    id: str
    name: str
    credits: Credits
    key: KeyInfo
    webhook: WebhookInfo


class CreatedKey(BaseModel):
    """``POST /v1/admin/keys``: the secret is shown this once."""

    key: KeyInfo
    secret: str


class KeyList(BaseModel):
    object: Literal["list"]
    data: list[KeyInfo]


class AdminAccount(BaseModel):
    id: str
    name: str
    credits: Credits
    webhook_url: str | None
    created_at: str | None


class AdminAccountList(BaseModel):
    object: Literal["list"]
    data: list[AdminAccount]


# Request history and webhook deliveries


class EntryWebhook(BaseModel):
    url: str
    status: str | None
    webhook_id: str


class HistoryEntry(BaseModel):
    request_id: str
    model: str
    slug: str
    status: str
    credits_deduction: float | None
    credits_reserved: float | None
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    error: str | None
    error_type: str | None
    key_id: str
    user_id: str | None  # the client's end user: metadata.user_id, or OpenAI's user
    webhook: EntryWebhook | None


class HistoryPage(BaseModel):
    """``GET /v1/requests``: newest first; ``last_id`` is the next page's ``after_id``."""

    object: Literal["list"]
    data: list[HistoryEntry]
    has_more: bool
    first_id: str | None
    last_id: str | None


class DeliveryAttemptInfo(BaseModel):
    attempt: int
    at: str | None
    url: str
    status_code: int | None
    error: str | None
    duration_ms: float


class WebhookLog(BaseModel):
    """``GET /v1/requests/{id}/webhook``."""

    request_id: str
    webhook_id: str
    url: str
    status: str
    attempts: list[DeliveryAttemptInfo]


# Usage, a request's content, and the credits ledger


class UsageTotals(BaseModel):
    """Requests created in a span (``completed`` and ``failed`` of them ended so), their
    tokens and what they were charged in USD."""

    requests: int
    completed: int
    failed: int
    input_tokens: int
    output_tokens: int
    cost: float


class ModelUsage(UsageTotals):
    model: str  # the model's slug: requests by an alias count under it


class DayUsage(UsageTotals):
    date: str  # YYYY-MM-DD, UTC
    models: list[ModelUsage]


class UsageReport(BaseModel):
    """``GET /v1/usage``: the account's requests summed over the span, per model, and per
    UTC day (every day of the span, oldest first, days without requests included)."""

    object: Literal["usage"]
    currency: Literal["USD"]
    since: str
    until: str
    total: UsageTotals
    models: list[ModelUsage]
    daily: list[DayUsage]


class RequestContent(BaseModel):
    """``GET /v1/requests/{id}/content``: what was asked and answered, while the request's
    result is kept. ``input`` is the request as checked (images without their bytes)."""

    request_id: str
    status: str
    model: str
    input: dict[str, Any]
    output: AnthropicMessage | None
    metrics: Metrics | None
    error: str | None
    expires_at: str | None


class LedgerEntry(BaseModel):
    """A change to a balance; amounts in USD (``amount`` null: set to unlimited;
    ``balance_after`` null: unlimited)."""

    id: int
    kind: Literal["grant", "set", "charge"]
    amount: float | None
    balance_after: float | None
    request_id: str | None
    note: str
    created_at: str | None


class LedgerPage(BaseModel):
    """``GET /v1/admin/accounts/{name}/ledger``: newest first; ``last_id`` is the next
    page's ``after_id``."""

    object: Literal["list"]
    account: str
    data: list[LedgerEntry]
    has_more: bool
    first_id: int | None
    last_id: int | None


# Liveness and readiness


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    reason: str | None = None
    models: dict[str, ModelState] = {}  # the state of each model this process serves
