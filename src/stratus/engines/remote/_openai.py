"""``engine = "openai"``: any server speaking OpenAI's chat completions (vLLM, SGLang,
llama-server, llama-cpp-python's server, Ollama, OpenAI itself).

The request is always streamed, with ``stream_options.include_usage``: usage comes from the
final chunk; an upstream that sends none is counted here (one token per content chunk, and
the input as :meth:`count_tokens` counts it). Stop sequences are sent as ``stop`` and also
matched here, for upstreams that ignore them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from stratus.config import ModelConfig
from stratus.engines._options import OpenAIOptions
from stratus.engines._stops import StopMatcher
from stratus.engines._types import (
    ChatMessage,
    EngineEvent,
    Finished,
    GenerationRequest,
    ImagePart,
    StopReason,
    TextDelta,
    TextPart,
    ToolChoice,
    ToolResultPart,
    ToolUsePart,
)
from stratus.engines.remote._base import (
    PendingCall,
    RemoteEngine,
    chunk_json,
    final_prefill_is_empty,
    plain_text,
    template_overhead,
)
from stratus.engines.remote._upstream import (
    Refused,
    Upstream,
    UpstreamError,
    sse_events,
)

FINISH: dict[str, StopReason] = {"stop": "end_turn", "length": "max_tokens",
                                 "tool_calls": "tool_use", "function_call": "tool_use"}
# where each tokenizer setting asks, under the server's root (the base URL less "/v1")
TOKENIZE_PATHS = {"tokenize": "/tokenize", "llama-cpp-python": "/extras/tokenize/count"}


class _OpenAIUpstream(Upstream):
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}


def image_url(part: ImagePart) -> str:
    if part.data is None:
        raise UpstreamError("an image URL reached the engine unfetched: submit it again")
    return f"data:{part.media_type};base64,{part.data}"


def _content(parts: Sequence[TextPart | ImagePart]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    return [{"type": "image_url", "image_url": {"url": image_url(p)}}
            if isinstance(p, ImagePart) else {"type": "text", "text": p.text} for p in parts]


def _turn(message: ChatMessage) -> list[dict[str, Any]]:
    """One of our turns as OpenAI messages: an assistant's tool calls go in ``tool_calls``;
    each tool result is a ``tool`` message of its own, before the user's other content."""
    plain = [p for p in message.parts if isinstance(p, TextPart | ImagePart)]
    if message.role == "assistant":
        calls = [{"id": p.id, "type": "function",
                  "function": {"name": p.name, "arguments": json.dumps(p.input)}}
                 for p in message.parts if isinstance(p, ToolUsePart)]
        turn: dict[str, Any] = {"role": "assistant", "content": _content(plain) or None}
        if calls:
            turn["tool_calls"] = calls
        return [turn]
    returned = [p for p in message.parts if isinstance(p, ToolResultPart)]
    results = [{"role": "tool", "tool_call_id": p.tool_use_id,
                "content": ("[error] " if p.is_error else "") + p.text} for p in returned]
    # a tool message holds text only: the images tools returned go in the user turn after
    plain = [i for p in returned for i in p.content if isinstance(i, ImagePart)] + plain
    return results + ([{"role": "user", "content": _content(plain)}] if plain or not results
                      else [])


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


class OpenAIEngine(RemoteEngine):
    path = "/chat/completions"
    probe_path = "/models"

    def __init__(self, config: ModelConfig, options: OpenAIOptions) -> None:
        super().__init__(config, options)
        self.tokenizer = options.tokenizer
        self._root = self.upstream.base.removesuffix("/v1")

    def _upstream(self) -> Upstream:
        return _OpenAIUpstream(self.options, self.config.slug, self.probe_path)

    async def upstream_count(self, request: GenerationRequest) -> int | None:
        """The upstream's tokenizer on the bare text (vLLM reads ``prompt``, llama-server
        ``content``, llama-cpp-python's server ``input``), plus the markup and images."""
        if self.tokenizer not in TOKENIZE_PATHS:
            return None
        text = plain_text(request)
        data = await self.upstream.post_json(
            self._root + TOKENIZE_PATHS[self.tokenizer],
            {"model": self.options.model, "prompt": text, "content": text, "input": text})
        count = data["count"] if "count" in data else len(data["tokens"])
        return int(count) + template_overhead(request)

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for i, message in enumerate(request.messages):
            if not final_prefill_is_empty(request, i):
                messages += _turn(message)
        body: dict[str, Any] = {
            "model": self.options.model, "messages": messages,
            "max_tokens": request.max_tokens, "stream": True,
            "stream_options": {"include_usage": True},
        }
        for name in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.top_k:  # 0 is the whole vocabulary: no top_k at all
            body["top_k"] = request.top_k
        if request.stop_sequences:
            body["stop"] = list(request.stop_sequences)
        if request.tools:
            body["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description or "",
                "parameters": t.input_schema}} for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
            if request.tool_choice.disable_parallel_tool_use:
                body["parallel_tool_calls"] = False
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt is not None:
            schema: dict[str, Any] = {"name": fmt.name or "answer", "schema": fmt.json_schema}
            if fmt.strict is not None:
                schema["strict"] = fmt.strict
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        return body

    async def read(self, response: httpx.Response, request: GenerationRequest,
                   input_tokens: int) -> AsyncIterator[EngineEvent]:
        matcher = StopMatcher(request.stop_sequences)
        chunks = 0  # content chunks: the output tokens when the upstream reports no usage
        finish: str | None = None
        matched_stop: str | None = None  # vLLM names the stop string that ended it
        usage: dict[str, Any] | None = None
        calls: dict[int, PendingCall] = {}  # by the index the upstream gives
        async for _, data in sse_events(response):
            if data.strip() == "[DONE]":
                break
            chunk = chunk_json(data)
            if chunk.get("error") is not None:
                raise _stream_error(chunk["error"])
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                for call in (choice.get("delta") or {}).get("tool_calls") or ():
                    _gather(calls, call)
                text = (choice.get("delta") or {}).get("content")
                if text:
                    chunks += 1
                    safe = matcher.feed(text)
                    if safe:
                        yield TextDelta(safe, input_tokens, chunks)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                    stop = choice.get("stop_reason")
                    matched_stop = stop if isinstance(stop, str) else None
            if matcher.matched is not None:
                break  # closing the stream stops the upstream
        if matcher.matched is None and finish is None:
            raise Refused("the upstream closed the stream before it finished", None,
                          failure=True, summary="the upstream cuts its streams short")
        rest = matcher.flush()
        if rest:
            yield TextDelta(rest, input_tokens, chunks)
        stop_sequence = matcher.matched
        if stop_sequence is None and finish == "stop" and matched_stop in request.stop_sequences:
            stop_sequence = matched_stop
        reason: StopReason = "stop_sequence" if stop_sequence is not None \
            else FINISH.get(finish or "stop", "end_turn")
        made = [call.finish(cut=reason != "end_turn" and reason != "tool_use")
                for _, call in sorted(calls.items())]
        made_calls = [call for call in made if call is not None]
        for call in made_calls:
            yield call
        if made_calls and reason == "end_turn":  # some servers end tool calls with "stop"
            reason = "tool_use"
        chunks += sum(len(call.pieces) for call in calls.values())
        output_tokens, cached = chunks, 0
        if usage is not None:  # none when the stream was closed here, at a stop sequence
            input_tokens = int(usage.get("prompt_tokens") or input_tokens)
            output_tokens = int(usage.get("completion_tokens") or chunks)
            cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        yield Finished(stop_reason=reason, input_tokens=input_tokens,
                       output_tokens=output_tokens, stop_sequence=stop_sequence,
                       cached_input_tokens=cached)


def _gather(calls: dict[int, PendingCall], delta: dict[str, Any]) -> None:
    """A streamed piece of a tool call: its id and name come first, its arguments in
    pieces."""
    call = calls.setdefault(delta.get("index", len(calls)), PendingCall())
    function = delta.get("function") or {}
    call.id = delta.get("id") or call.id
    call.name = function.get("name") or call.name
    if function.get("arguments"):
        call.pieces.append(function["arguments"])


def _stream_error(error: Any) -> Exception:
    """An error the upstream reported inside the stream: an overload may be retried (before
    any text), anything else fails the job."""
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        kind = f"{error.get('type', '')} {error.get('code', '')}".lower()
    else:
        message = kind = str(error)
    text = f"the upstream reported an error: {message}"
    if any(word in kind for word in ("overload", "rate_limit", "429", "503", "unavailable")):
        limited = "rate_limit" in kind or "429" in kind
        return Refused(text, None, failure=not limited,
                       summary="the upstream is rate limiting" if limited
                       else "the upstream is overloaded")
    return UpstreamError(text)
