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
    Part,
    StopReason,
    TextDelta,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
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
    "Part",
    "StopReason",
    "TextDelta",
    "TextPart",
    "ToolCall",
    "ToolChoice",
    "ToolResultPart",
    "ToolSpec",
    "ToolUsePart",
    "build_engine",
]
