"""The engine seam: what the worker hands an engine, and the typed events it gets back.

An engine turns one :class:`GenerationRequest` into an async stream of events: zero or more
:class:`TextDelta`, then exactly one :class:`Finished`. Closing the stream early (the consumer
is cancelled or stops iterating) cancels the generation and frees whatever it held.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

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


IMAGE_MARK = "[image]"


class ChatMessage(_Frozen):
    role: Literal["user", "assistant"]
    parts: tuple[TextPart | ImagePart, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def rendered(self) -> str:
        """The turn as a model reads it: its text, with ``[image]`` where an image is."""
        return "".join(IMAGE_MARK if isinstance(p, ImagePart) else p.text for p in self.parts)


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


EngineEvent = TextDelta | Finished


class EngineBusy(Exception):
    """The engine cannot take the request now (an upstream at capacity, a 429 or 503 before
    any output). Raised before the first text, it hands the job back to the queue without
    spending an attempt; the worker waits ``retry_after`` seconds before claiming another
    job of the model."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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

    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]: ...
