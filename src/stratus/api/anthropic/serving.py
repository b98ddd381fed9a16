"""Anthropic's Messages API (``/v1/messages``): requests in, wire bodies out, no HTTP.

The same jobs, keys and limits as the Segmind surface: a message is a job that the caller
waits for.
"""

from __future__ import annotations

from typing import Any

from stratus.accounts import Caller
from stratus.api._outcome import ended_result
from stratus.normalize import (
    Normalized,
    count_input_tokens,
    normalize,
    parse_json,
    parse_model,
)
from stratus.protocol.messages import AnthropicMessagesRequest, CountTokensRequest
from stratus.runtime import Admission, Runtime
from stratus.store import JobRecord


async def create(runtime: Runtime, caller: Caller, raw: bytes, request_id: str,
                 idempotency_key: str | None,
                 webhook: str | None) -> tuple[Admission, Normalized, str]:
    """The admitted job, the checked request, and the model name as the client wrote it."""
    data = parse_json(raw)
    body = parse_model(data, AnthropicMessagesRequest)
    spec = runtime.models.resolve(body.model)
    normalized = normalize(body.as_messages_request(), spec)
    admission = await runtime.submit(caller, spec, body.model, normalized, request_id,
                                     idempotency_key, data, webhook)
    return admission, normalized, body.model


def message_of(record: JobRecord) -> dict[str, Any]:
    """The Anthropic message of an ended job, or the error it ended with."""
    return ended_result(record)


def count_tokens(runtime: Runtime, caller: Caller, raw: bytes) -> dict[str, int]:
    body = parse_model(parse_json(raw), CountTokensRequest)
    spec = runtime.models.resolve(body.model)
    runtime.check_scope(caller.key, spec, body.model)
    return {"input_tokens": count_input_tokens(body.as_messages_request(), spec)}
