"""``engine = "anthropic"``: the Anthropic Messages API behind our queue, keys and credits.

Always streamed. Usage comes from ``message_start`` (the input, cache reads and writes
included) and ``message_delta`` (the output); stop reasons and stop sequences are Anthropic's
own. An ``error`` event before any text (``overloaded_error``, ``rate_limit_error``,
``api_error``) hands the job back like a 529 would; after text it fails the job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from stratus.config import ModelConfig
from stratus.engines._options import AnthropicOptions
from stratus.engines._types import (
    EngineEvent,
    Finished,
    GenerationRequest,
    ImagePart,
    Part,
    StopReason,
    TextDelta,
    TextPart,
    ToolResultPart,
    ToolUsePart,
)
from stratus.engines.remote._base import (
    PendingCall,
    RemoteEngine,
    chunk_json,
    estimate_tokens,
    final_prefill_is_empty,
)
from stratus.engines.remote._upstream import (
    ONE_REQUEST_TRIES,
    Refused,
    Upstream,
    UpstreamError,
    sse_events,
)

STOP_REASONS: dict[str, StopReason] = {"end_turn": "end_turn", "max_tokens": "max_tokens",
                                       "stop_sequence": "stop_sequence", "tool_use": "tool_use"}
# error events that may be retried: whether the upstream itself failed, the summary, tries
RETRYABLE: dict[str, tuple[bool, str, int | None]] = {
    "overloaded_error": (True, "the upstream is overloaded", None),
    "rate_limit_error": (False, "the upstream is rate limiting", None),
    "api_error": (False, "the upstream had an internal error", ONE_REQUEST_TRIES),
}


class _AnthropicUpstream(Upstream):
    def __init__(self, options: AnthropicOptions, name: str, probe_path: str) -> None:
        super().__init__(options, name, probe_path)
        self.version = options.version

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.version}
        if self.key:
            headers["x-api-key"] = self.key
        return headers


def _block(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolUsePart):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.input}
    if isinstance(part, ToolResultPart):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.tool_use_id}
        if any(isinstance(p, ImagePart) for p in part.content):
            block["content"] = [_block(p) for p in part.content if _kept(p)]
        elif part.text:
            block["content"] = part.text
        if part.is_error:
            block["is_error"] = True
        return block
    if part.data is None:
        raise UpstreamError("an image URL reached the engine unfetched: submit it again")
    return {"type": "image",
            "source": {"type": "base64", "media_type": part.media_type, "data": part.data}}


def _kept(part: Part) -> bool:
    """Anthropic refuses text blocks that hold only white space."""
    return not isinstance(part, TextPart) or bool(part.text.strip())


class AnthropicEngine(RemoteEngine):
    path = "/v1/messages"
    probe_path = "/v1/models"

    def __init__(self, config: ModelConfig, options: AnthropicOptions) -> None:
        super().__init__(config, options)
        self.tokenizer = options.tokenizer

    def _upstream(self) -> Upstream:
        assert isinstance(self.options, AnthropicOptions)
        return _AnthropicUpstream(self.options, self.config.slug, self.probe_path)

    def _prompt(self, request: GenerationRequest) -> dict[str, Any]:
        messages = [{"role": m.role, "content": [_block(p) for p in m.parts if _kept(p)]}
                    for i, m in enumerate(request.messages)
                    if not final_prefill_is_empty(request, i)]
        prompt: dict[str, Any] = {"model": self.options.model, "messages": messages}
        if request.system:
            prompt["system"] = request.system
        if request.tools:
            prompt["tools"] = [t.model_dump(exclude_none=True) for t in request.tools]
        if request.tool_choice is not None:
            prompt["tool_choice"] = request.tool_choice.model_dump(
                exclude_none=True, exclude_defaults=request.tool_choice.type == "none")
        return prompt

    async def provisional_tokens(self, request: GenerationRequest) -> int:
        return estimate_tokens(request)  # message_start brings the count before any text

    async def upstream_count(self, request: GenerationRequest) -> int | None:
        """Anthropic's ``POST /v1/messages/count_tokens``, if the model is set to ask it."""
        if self.tokenizer != "upstream":
            return None
        data = await self.upstream.post_json(self.upstream.base + "/v1/messages/count_tokens",
                                             self._prompt(request))
        return int(data["input_tokens"])

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        body = {**self._prompt(request), "max_tokens": request.max_tokens, "stream": True}
        if request.temperature is not None:  # Anthropic's scale is 0 to 1
            body["temperature"] = min(request.temperature, 1.0)
        elif request.top_p is not None:  # current models take one of the two, not both
            body["top_p"] = request.top_p
        if request.top_k:  # 0 is the whole vocabulary: no top_k at all
            body["top_k"] = request.top_k
        if request.stop_sequences:
            body["stop_sequences"] = list(request.stop_sequences)
        fmt = request.response_format
        if fmt is not None:  # Anthropic has no "any object": its schema is the object
            schema = fmt.json_schema if fmt.type == "json_schema" else {"type": "object"}
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        return body

    async def read(self, response: httpx.Response, request: GenerationRequest,
                   input_tokens: int) -> AsyncIterator[EngineEvent]:
        cached = 0
        deltas = 0  # text deltas: the output so far, until message_delta reports it
        output_tokens: int | None = None
        stop_reason: str | None = None
        stop_sequence: str | None = None
        ended = False
        tools: dict[int, PendingCall] = {}  # by block index: emitted once the message ends
        async for event, data in sse_events(response):
            payload = chunk_json(data)
            kind = payload.get("type", event)
            if kind == "message_start":
                usage = (payload.get("message") or {}).get("usage") or {}
                cached = int(usage.get("cache_read_input_tokens") or 0)
                input_tokens = (int(usage.get("input_tokens") or 0) + cached
                                + int(usage.get("cache_creation_input_tokens") or 0))
            elif kind == "content_block_start":
                block = payload.get("content_block") or {}
                if block.get("type") == "tool_use":
                    tools[payload.get("index", -1)] = PendingCall(block.get("id"),
                                                                  block.get("name"))
            elif kind == "content_block_delta":
                delta = payload.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    deltas += 1
                    yield TextDelta(delta["text"], input_tokens, deltas)
                elif delta.get("type") == "input_json_delta" and payload.get("index") in tools:
                    tools[payload["index"]].pieces.append(delta.get("partial_json") or "")
            elif kind == "message_delta":
                delta = payload.get("delta") or {}
                stop_reason = delta.get("stop_reason") or stop_reason
                stop_sequence = delta.get("stop_sequence") or stop_sequence
                usage = payload.get("usage") or {}
                if usage.get("output_tokens") is not None:
                    output_tokens = int(usage["output_tokens"])
            elif kind == "message_stop":
                ended = True
                break
            elif kind == "error":
                raise _stream_error(payload.get("error") or {})
        if not ended:
            raise Refused("the upstream closed the stream before message_stop", None,
                          failure=True, summary="the upstream cuts its streams short")
        reason = STOP_REASONS.get(stop_reason or "", "end_turn")
        for _, pending in sorted(tools.items()):
            call = pending.finish(cut=reason == "max_tokens")
            if call is not None:
                yield call
        yield Finished(stop_reason=reason,
                       input_tokens=input_tokens,
                       output_tokens=deltas if output_tokens is None else output_tokens,
                       stop_sequence=stop_sequence, cached_input_tokens=cached)


def _stream_error(error: dict[str, Any]) -> Exception:
    kind = str(error.get("type") or "error")
    message = f"the upstream reported {kind}: {error.get('message') or 'no message'}"
    if kind in RETRYABLE:
        failure, summary, tries = RETRYABLE[kind]
        return Refused(message, None, failure=failure, summary=summary, tries=tries)
    return UpstreamError(message)
