"""The echo engine: no model, deterministic output, for tests and for measuring the platform.

It answers with the words of the last user turn, one word per token, after an optional
per-token delay (``options.delay_ms``). ``max_tokens`` and ``stop_sequences`` apply as they
would on a real model. A token is a whitespace-separated word; an image counts as one token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from stratus.engines._options import EchoOptions
from stratus.engines._registry import engine_options
from stratus.engines._stops import StopMatcher
from stratus.engines._types import (
    READY,
    EngineEvent,
    EngineHealth,
    Finished,
    GenerationRequest,
    ImagePart,
    StopReason,
    TextDelta,
    TextPart,
    ToolResultPart,
    ToolUsePart,
)


def _words(text: str) -> list[str]:
    return text.split()


def _text(part: TextPart | ToolUsePart | ToolResultPart) -> str:
    if isinstance(part, ToolUsePart):
        return json.dumps(part.input)
    return part.text


class EchoEngine:
    def __init__(self, options: EchoOptions | dict[str, Any] | None = None,
                 slots: int = 8) -> None:
        if not isinstance(options, EchoOptions):
            options = engine_options("echo", options or {})
            assert isinstance(options, EchoOptions)
        self.delay = options.delay_ms / 1000.0
        self.slots = slots
        self._options = options
        self.loaded = True  # until started without generating
        self.loads = 0  # loads that succeeded, for tests

    async def start(self, generate: bool = True) -> None:
        self.loaded = generate

    async def close(self) -> None:
        self.loaded = False

    async def load(self) -> None:
        await asyncio.sleep(self._options.load_ms / 1000.0)
        if self._options.fail_load:
            raise RuntimeError("the echo model is configured to fail its load (fail_load)")
        self.loaded = True
        self.loads += 1

    async def unload(self) -> None:
        self.loaded = False

    def memory_bytes(self) -> int:
        return int(self._options.memory_mb * 2**20)

    def capacity(self) -> int:
        return self.slots

    def health(self) -> EngineHealth:
        return READY

    async def count_tokens(self, request: GenerationRequest) -> int:
        return self._count(request)

    @staticmethod
    def _count(request: GenerationRequest) -> int:
        count = len(_words(request.system or ""))
        for message in request.messages:
            for part in message.parts:
                inner = part.content if isinstance(part, ToolResultPart) else (part,)
                count += sum(1 if isinstance(p, ImagePart) else len(_words(_text(p)))
                             for p in inner)
        return count

    def min_tokens(self, chars: int) -> int:
        return 0  # a word may be of any length

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        if not self.loaded:
            raise RuntimeError("the echo model is not loaded")
        input_tokens = self._count(request)
        last_user = next((m for m in reversed(request.messages) if m.role == "user"), None)
        words = _words(last_user.text) if last_user else []
        matcher = StopMatcher(request.stop_sequences)
        emitted = 0
        stop_reason: StopReason = "end_turn"
        for word in words:
            if emitted == request.max_tokens:
                stop_reason = "max_tokens"
                break
            if self.delay:
                await asyncio.sleep(self.delay)
            emitted += 1
            safe = matcher.feed(word if emitted == 1 else " " + word)
            if safe:
                yield TextDelta(safe, input_tokens, emitted)
            if matcher.matched is not None:
                stop_reason = "stop_sequence"
                break
        rest = matcher.flush()
        if rest:
            yield TextDelta(rest, input_tokens, emitted)
        yield Finished(stop_reason=stop_reason, input_tokens=input_tokens,
                       output_tokens=emitted, stop_sequence=matcher.matched)
