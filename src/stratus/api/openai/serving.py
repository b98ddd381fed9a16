"""OpenAI-compatible chat completions, mapped onto the same jobs: no HTTP here."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

from stratus.accounts import Caller
from stratus.admission import Admission, Submission, user_id_of
from stratus.api._errors import openai_error_body
from stratus.api._follow import Ended, OnEnd, Text, follow
from stratus.api._outcome import ended_result, failure_error
from stratus.engines import OutputFormat
from stratus.errors import InvalidRequest, NotFound
from stratus.normalize import (
    Checked,
    Normalized,
    check,
    messages_request,
    output_format,
    parse_body,
)
from stratus.protocol.openai import ChatCompletionRequest
from stratus.runtime import Runtime
from stratus.store import JobRecord, Message, Status

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
          "tool_use": "tool_calls"}


async def create(runtime: Runtime, caller: Caller, raw: bytes, request_id: str,
                 idempotency_key: str | None,
                 webhook: str | None) -> tuple[Admission, Normalized, ChatCompletionRequest]:
    data, body = await runtime.offload.run(parse_body, raw, ChatCompletionRequest,
                                          size=len(raw))
    if body.n not in (None, 1):
        raise InvalidRequest(f"n must be 1 (got {body.n}): send one request per completion")
    if body.temperature is not None and not 0 <= body.temperature <= 2:
        raise InvalidRequest(f"temperature must be between 0 and 2 (got {body.temperature})")
    if body.seed is not None and not -(2**63) <= body.seed < 2**63:
        raise InvalidRequest(f"seed must be a 64-bit integer (got {body.seed})")
    _check_fields(body)
    spec = runtime.models.resolve(body.model)

    def prepare() -> Checked:
        checked = check(messages_request(body), spec)
        request = checked.request.model_copy(update={
            "temperature": body.temperature, "seed": body.seed,
            "frequency_penalty": body.frequency_penalty,
            "presence_penalty": body.presence_penalty,
            "response_format": _output_format(body, spec.remote)})
        return dataclasses.replace(checked, request=request, stream=bool(body.stream))

    admission, normalized = await runtime.submit(Submission(
        caller, spec, body.model, prepare, request_id, data, idempotency_key=idempotency_key,
        stream=bool(body.stream), webhook=webhook, body_size=len(raw),
        user_id=user_id_of(body.user, "user")))
    assert normalized is not None  # a route that waits gets a 404 for an expired replay
    return admission, normalized, body


def _check_fields(body: ChatCompletionRequest) -> None:
    """What OpenAI's API takes and this one cannot do: a 400 that says so."""
    for name in ("frequency_penalty", "presence_penalty"):
        value = getattr(body, name)
        if value is not None and not -2 <= value <= 2:
            raise InvalidRequest(f"{name} must be between -2 and 2 (got {value})")
    if body.logprobs or body.top_logprobs:
        raise InvalidRequest("logprobs are not available from this server: leave logprobs "
                             "and top_logprobs out, or set logprobs to false")



def _output_format(body: ChatCompletionRequest, remote: bool) -> OutputFormat | None:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    spec = fmt.json_schema or {}
    if fmt.type == "json_schema" and not isinstance(spec.get("schema"), dict):
        raise InvalidRequest("response_format.json_schema.schema is required: the JSON "
                             "Schema the answer must follow")
    return output_format(fmt.type, spec.get("schema"), "response_format.json_schema",
                         name=spec.get("name"), strict=spec.get("strict"),
                         enforced_here=not remote)


def _message(result: Message) -> dict[str, Any]:
    """The assistant's message: its text (None when it only calls tools) and its calls."""
    calls = _tool_calls(result)
    message: dict[str, Any] = {"role": "assistant",
                               "content": result.text if result.text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_calls(result: Message) -> list[dict[str, Any]]:
    return [{"id": b["id"], "type": "function",
             "function": {"name": b["name"], "arguments": json.dumps(b["input"])}}
            for b in result.content if b.get("type") == "tool_use"]


def _usage(result: Message) -> dict[str, int]:
    return {"prompt_tokens": result.input_tokens, "completion_tokens": result.output_tokens,
            "total_tokens": result.input_tokens + result.output_tokens,
            "prompt_tokens_details": {"cached_tokens": result.cached_input_tokens}}


def completion(record: JobRecord, model: str) -> dict[str, Any]:
    result = ended_result(record)
    return {
        "id": f"chatcmpl-{record.id}", "object": "chat.completion",
        "created": int(record.created_at), "model": model,
        "choices": [{"index": 0, "message": _message(result),
                     "finish_reason": FINISH.get(result.stop_reason or "", "stop"),
                     "logprobs": None}],
        "usage": _usage(result),
    }


async def chunks(runtime: Runtime, record: JobRecord, body: ChatCompletionRequest,
                 on_end: OnEnd | None = None) -> AsyncIterator[bytes]:
    """``data:`` lines of ``chat.completion.chunk`` objects, then ``data: [DONE]``."""
    base = {"id": f"chatcmpl-{record.id}", "object": "chat.completion.chunk",
            "created": int(record.created_at), "model": body.model}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                     "logprobs": None}], **extra}
        return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for item in follow(runtime, record, cancel_on_exit=True, on_end=on_end):
            if isinstance(item, Text):
                yield chunk({"content": item.text})
            elif isinstance(item, Ended):
                final = item.record
                if final.status is Status.FAILED or final.result is None:
                    error = failure_error(final)
                    yield f"data: {json.dumps(openai_error_body(error))}\n\n".encode()
                else:
                    calls = _tool_calls(final.result)
                    if calls:  # each whole, in one delta
                        yield chunk({"tool_calls": [{"index": i, **call}
                                                    for i, call in enumerate(calls)]})
                    yield chunk({}, FINISH.get(final.result.stop_reason or "", "stop"))
                    if body.stream_options and body.stream_options.include_usage:
                        usage = {**base, "choices": [], "usage": _usage(final.result)}
                        yield f"data: {json.dumps(usage)}\n\n".encode()
    except NotFound as exc:
        yield f"data: {json.dumps(openai_error_body(exc))}\n\n".encode()
    yield b"data: [DONE]\n\n"
