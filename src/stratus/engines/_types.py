"""The engine seam: what the worker hands an engine, and the typed events it gets back.

An engine turns one :class:`GenerationRequest` into an async stream of events: zero or more
:class:`TextDelta` and :class:`ToolCall` (a model that calls tools), then exactly one
:class:`Finished`. Closing the stream early (the consumer is cancelled or stops iterating)
cancels the generation and frees whatever it held.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Frozen):
    type: Literal["text"] = "text"
    text: str


class ImagePart(_Frozen):
    """An image already checked by the API: inline bytes (base64) or a URL to fetch."""

    type: Literal["image"] = "image"
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ToolUsePart(_Frozen):
    """The assistant called a tool (in a conversation's history)."""

    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class ToolResultPart(_Frozen):
    """What a tool call returned, sent back in a user turn."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: tuple[TextPart | ImagePart, ...] = ()
    is_error: bool = False

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def rendered_content(self) -> str:
        """Its content as a model reads it: text, with ``[image]`` where an image is."""
        return "".join(p.text if isinstance(p, TextPart) else IMAGE_MARK for p in self.content)


Part = TextPart | ImagePart | ToolUsePart | ToolResultPart
IMAGE_MARK = "[image]"


def _rendered(part: Part) -> str:
    if isinstance(part, TextPart):
        return part.text
    if isinstance(part, ImagePart):
        return IMAGE_MARK
    if isinstance(part, ToolUsePart):
        return json.dumps({"name": part.name, "input": part.input}, ensure_ascii=False)
    return part.rendered_content


class ChatMessage(_Frozen):
    role: Literal["user", "assistant"]
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def rendered(self) -> str:
        """The turn as a model reads it: its text, with ``[image]`` where an image is, tool
        calls as JSON and tool results as their content."""
        return "".join(_rendered(p) for p in self.parts)

    def images(self) -> list[ImagePart]:
        """Its images, those inside tool results included."""
        found: list[ImagePart] = []
        for part in self.parts:
            inner = part.content if isinstance(part, ToolResultPart) else (part,)
            found += [p for p in inner if isinstance(p, ImagePart)]
        return found


class ToolSpec(_Frozen):
    """A tool the model may call: its name, what it does, and its input's JSON Schema."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(_Frozen):
    """``auto`` (the model decides), ``any`` (some tool), ``tool`` (``name``), ``none``."""

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class OutputFormat(_Frozen):
    """Structured output: any JSON object, or one that validates against ``json_schema``
    (checked when the request was admitted); ``name`` and ``strict`` are OpenAI's."""

    type: Literal["json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


class GenerationRequest(_Frozen):
    """A request in engine terms, independent of the surface it arrived on."""

    messages: tuple[ChatMessage, ...]
    system: str | None = None
    max_tokens: int = Field(gt=0)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float | None = None  # OpenAI's, -2 to 2: on the output so far
    presence_penalty: float | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    response_format: OutputFormat | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text the model made, with the usage so far (what a request stopped now has used)."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Finished:
    stop_reason: StopReason
    input_tokens: int
    output_tokens: int
    stop_sequence: str | None = None
    cached_input_tokens: int = 0  # of the input, tokens whose KV was reused, not computed


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model called a tool: a whole ``tool_use`` block, once its input is complete."""

    id: str
    name: str
    input: dict[str, Any]


EngineEvent = TextDelta | ToolCall | Finished


class EngineBusy(Exception):
    """The engine cannot take the request now (an upstream at capacity, a 429 or 503 before
    any output). Raised before the first text, it hands the job back to the queue without
    spending an attempt; the worker waits ``retry_after`` seconds before claiming another
    job of the model. ``tries``: how often one job may be handed back for this (None: the
    worker's bound)."""

    def __init__(self, message: str, retry_after: float = 1.0,
                 tries: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.tries = tries


class RequestRejected(Exception):
    """The engine (an upstream) refused the request itself as invalid: the job fails as an
    invalid request, the client's to fix, not as the engine's failure."""


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """``ready``; or ``cooldown``: an upstream that kept failing is left alone (its jobs wait
    QUEUED) until a probe finds it answering again, next at ``until`` (epoch seconds)."""

    state: Literal["ready", "cooldown"] = "ready"
    reason: str | None = None
    until: float | None = None


READY = EngineHealth()


class Engine(Protocol):
    """A model runtime. One instance serves one configured model."""

    async def start(self, generate: bool = True) -> None:
        """Load the model. ``generate=False``: only what counting tokens needs (an API node
        that admits requests for workers elsewhere)."""
        ...

    async def close(self) -> None: ...

    async def load(self) -> None:
        """After ``start(generate=False)``: load what generating needs (a model loaded on
        demand). Raises if it cannot."""
        ...

    async def unload(self) -> None:
        """Release what generating needs (its memory), keeping what counting tokens needs.
        Called only while nothing runs on it."""
        ...

    def memory_bytes(self) -> int:
        """What the model holds loaded, as a worker's memory budget counts it (0: nothing to
        speak of, as for a remote engine)."""
        ...

    def capacity(self) -> int:
        """How many requests it may run at once now (0 while it can take none)."""
        ...

    def health(self) -> EngineHealth: ...

    async def count_tokens(self, request: GenerationRequest) -> int:
        """Input tokens of ``request`` as this model sees them (system and turns included).
        May do I/O (an upstream's tokenizer) or take a thread (a local one)."""
        ...

    def min_tokens(self, chars: int) -> int:
        """A lower bound on the tokens of any text of ``chars`` characters (0: no bound),
        so that a prompt far too long for the context is refused without tokenizing it."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncGenerator[EngineEvent, None]: ...
