"""Engines: model runtimes behind one protocol."""

from stratus.engines._registry import build_engine
from stratus.engines._types import (
    ChatMessage,
    Engine,
    EngineBusy,
    EngineEvent,
    Finished,
    GenerationRequest,
    ImagePart,
    StopReason,
    TextDelta,
    TextPart,
)

__all__ = [
    "ChatMessage",
    "Engine",
    "EngineBusy",
    "EngineEvent",
    "Finished",
    "GenerationRequest",
    "ImagePart",
    "StopReason",
    "TextDelta",
    "TextPart",
    "build_engine",
]
