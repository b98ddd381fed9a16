"""Engines: model runtimes behind one protocol."""

from stratus.engines._registry import Host, build_engine
from stratus.engines._types import (
    ChatMessage,
    Engine,
    EngineBusy,
    EngineEvent,
    EngineHealth,
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
    "EngineHealth",
    "Finished",
    "GenerationRequest",
    "Host",
    "ImagePart",
    "StopReason",
    "TextDelta",
    "TextPart",
    "build_engine",
]
