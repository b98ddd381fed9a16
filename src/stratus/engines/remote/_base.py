"""An engine whose model runs at an upstream: what the OpenAI and Anthropic kinds share."""

from __future__ import annotations

import json
import logging
import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from stratus.config import ModelConfig
from stratus.engines._options import RemoteOptions
from stratus.engines._types import (
    IMAGE_MARK,
    EngineEvent,
    EngineHealth,
    GenerationRequest,
    ToolCall,
)
from stratus.engines.remote._upstream import Refused, Upstream, UpstreamError
from stratus.errors import describe

log = logging.getLogger("stratus.engines.remote")

# The estimate when the upstream cannot count: generous, so that what admission reserves
# covers the real count (charges use the upstream's own usage).
CHARS_PER_TOKEN = 3  # ASCII: real tokenizers average about 4 characters of English a token
TOKENS_PER_CHAR = 2  # any other character (CJK, emoji): at most about 2 tokens each
TOKENS_PER_TURN = 4  # the chat template's markup around a turn
TOKENS_PER_IMAGE = 768


def text_tokens(text: str) -> int:
    """A generous count of ``text``'s tokens: one per 3 ASCII characters, 2 per other."""
    ascii_chars = sum(1 for ch in text if ch < "\x80")
    return math.ceil(ascii_chars / CHARS_PER_TOKEN) + TOKENS_PER_CHAR * (len(text) - ascii_chars)


def estimate_tokens(request: GenerationRequest) -> int:
    """The text (tools, tool calls and results as JSON) by :func:`text_tokens`, 4 per turn
    (and the system prompt), 768 per image."""
    return text_tokens(plain_text(request)) + template_overhead(request)


def template_overhead(request: GenerationRequest) -> int:
    """What an upstream tokenizer counting the bare text leaves out: markup and images."""
    images = sum(len(m.images()) for m in request.messages)
    return TOKENS_PER_TURN * (len(request.messages) + bool(request.system)) \
        + TOKENS_PER_IMAGE * images


def plain_text(request: GenerationRequest) -> str:
    """The request's text: the system prompt, the tools' definitions, the turns."""
    tools = json.dumps([t.model_dump(exclude_none=True) for t in request.tools]) \
        if request.tools else ""
    texts = [request.system or "", tools]
    texts += [m.rendered.replace(IMAGE_MARK, "") for m in request.messages]
    return "\n\n".join(t for t in texts if t)


def final_prefill_is_empty(request: GenerationRequest, index: int) -> bool:
    """The last turn is the assistant's with nothing in it: an upstream wants none."""
    message = request.messages[index]
    return (index == len(request.messages) - 1 and message.role == "assistant"
            and not message.rendered.strip())


def chunk_json(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise UpstreamError(f"the upstream sent an event that is not JSON: {data[:200]!r}") \
            from None
    if not isinstance(chunk, dict):
        raise UpstreamError(f"the upstream sent an event that is not an object: {data[:200]!r}")
    return chunk


@dataclass
class PendingCall:
    """A tool call as it streams in: its id and name, then its input in pieces of JSON."""

    id: str | None = None
    name: str | None = None
    pieces: list[str] = field(default_factory=list)

    def finish(self, cut: bool) -> ToolCall | None:
        """The whole call; None for one the output limit cut short (``cut``: the reply
        ended at ``max_tokens``); ``UpstreamError`` for an input that is not an object."""
        document = "".join(self.pieces) or "{}"
        try:
            arguments = json.loads(document)
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict) or not self.name:
            if cut:
                return None
            raise UpstreamError(f"the upstream called tool {self.name!r} with an input that "
                                f"is not a JSON object: {document[:200]!r}")
        return ToolCall(id=self.id or "toolu_" + uuid.uuid4().hex[:24], name=self.name,
                        input=arguments)


class RemoteEngine(ABC):
    """Streams every request from the upstream; see ``_upstream`` for what is retried."""

    path: str  # the generation route, under the base URL
    probe_path: str  # a cheap GET that answers while the upstream is up

    def __init__(self, config: ModelConfig, options: RemoteOptions) -> None:
        self.config = config
        self.options = options
        self.upstream = self._upstream()
        self._warned = False  # the upstream's tokenizer failed once: said in the log

    def _upstream(self) -> Upstream:
        return Upstream(self.options, self.config.slug, self.probe_path)

    async def start(self, generate: bool = True) -> None:
        self.upstream.start(generate)

    async def close(self) -> None:
        await self.upstream.close()

    async def load(self) -> None:
        return None  # the upstream holds the model

    async def unload(self) -> None:
        return None

    def memory_bytes(self) -> int:
        return 0

    def capacity(self) -> int:
        return self.upstream.capacity()

    def health(self) -> EngineHealth:
        return self.upstream.cooldown.health()

    def min_tokens(self, chars: int) -> int:
        return 0

    async def count_tokens(self, request: GenerationRequest) -> int:
        """The upstream's own count where the model is set to ask it; else, and whenever
        it cannot answer, the estimate."""
        try:
            counted = await self.upstream_count(request)
        except (httpx.HTTPError, UpstreamError, ValueError, KeyError, TypeError) as exc:
            if not self._warned:
                self._warned = True
                log.warning("model %s: the upstream did not count the tokens (%s); counting "
                            "by estimate while it does not", self.config.slug, describe(exc))
            counted = None
        return estimate_tokens(request) if counted is None else counted

    async def upstream_count(self, request: GenerationRequest) -> int | None:
        """The upstream's own count, if the model is set to ask it (None: it is not)."""
        return None

    @abstractmethod
    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The upstream's request body, streaming."""

    @abstractmethod
    def read(self, response: httpx.Response, request: GenerationRequest,
             input_tokens: int) -> AsyncIterator[EngineEvent]:
        """The upstream's stream as our events. Raises :class:`Refused` for what may be
        retried (an overload reported in the stream, a stream cut short) and
        :class:`UpstreamError` for what may not."""

    async def provisional_tokens(self, request: GenerationRequest) -> int:
        """The input as counted until the upstream reports its usage (kept when it never
        does)."""
        return await self.count_tokens(request)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        input_tokens = await self.provisional_tokens(request)
        started = False
        try:
            async with self.upstream.stream(self.path, self.body(request)) as response:
                async for event in self.read(response, request, input_tokens):
                    if not started:
                        started = True
                        self.upstream.cooldown.success()
                    yield event
        except Refused as refused:
            if started:  # text was sent: it cannot start over
                raise UpstreamError(str(refused)) from None
            raise self.upstream.busy(refused) from None
        except httpx.TransportError as exc:  # the connection broke while streaming
            message = f"the upstream's stream broke: {describe(exc)}"
            if started:
                raise UpstreamError(message) from None
            raise self.upstream.busy(Refused(
                message, None, failure=True, summary="the upstream's streams break")) from None
