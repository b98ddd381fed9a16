"""Anthropic's Messages API (``/v1/messages``): requests in, wire bodies out, no HTTP.

The same jobs, keys and limits as the Segmind surface: a message is a job that the caller
waits for.
"""

from __future__ import annotations

from typing import Any

from stratus.accounts import Caller
from stratus.admission import Admission, Submission, user_id_of
from stratus.api._outcome import ended_result
from stratus.limits import LimitState
from stratus.normalize import Checked, Normalized, check, counting_request, parse_body
from stratus.protocol.messages import AnthropicMessagesRequest, CountTokensRequest
from stratus.runtime import Runtime
from stratus.store import JobRecord


async def create(runtime: Runtime, caller: Caller, raw: bytes, request_id: str,
                 idempotency_key: str | None,
                 webhook: str | None) -> tuple[Admission, Normalized, str]:
    """The admitted job, the checked request, and the model name as the client wrote it."""
    data, body = await runtime.offload.run(parse_body, raw, AnthropicMessagesRequest,
                                          size=len(raw))
    spec = runtime.models.resolve(body.model)

    def prepare() -> Checked:
        return check(body.as_messages_request(), spec)

    admission, normalized = await runtime.submit(Submission(
        caller, spec, body.model, prepare, request_id, data, idempotency_key=idempotency_key,
        stream=bool(body.stream), webhook=webhook, body_size=len(raw),
        user_id=user_id_of((body.metadata or {}).get("user_id"), "metadata.user_id")))
    assert normalized is not None  # a route that waits gets a 404 for an expired replay
    return admission, normalized, body.model


def message_of(record: JobRecord) -> dict[str, Any]:
    """The Anthropic message of an ended job, or the error it ended with."""
    return ended_result(record).to_dict()


async def count_tokens(runtime: Runtime, caller: Caller,
                       raw: bytes) -> tuple[dict[str, int], LimitState | None]:
    """The input tokens, and the key's rate limits after the call: a count is one request
    against the key's requests per minute (no tokens, no credits)."""
    _, body = await runtime.offload.run(parse_body, raw, CountTokensRequest, size=len(raw))
    spec = runtime.models.resolve(body.model)
    runtime.check_scope(caller.key, spec, body.model)
    key = caller.key
    limits = await runtime.limiter.admit(
        key.id, requests_per_minute=key.options.requests_per_minute,
        tokens_per_minute=key.options.tokens_per_minute, tokens=0)
    counted = await runtime.offload.run(counting_request, body.as_messages_request(), spec,
                                        size=len(raw))
    count = await spec.engine.count_tokens(counted)
    return {"input_tokens": count}, limits
