"""What the SDK hands back: replies and job statuses, as plain objects."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    def is_terminal(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED)


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Reply:
    """A finished message. ``raw`` is the Anthropic message exactly as the server sent it."""

    id: str
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None
    usage: Usage
    raw: dict[str, Any]
    request_id: str | None = None
    metrics: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")

    @classmethod
    def from_message(cls, message: dict[str, Any], *, request_id: str | None = None,
                     metrics: dict[str, Any] | None = None) -> Reply:
        usage = message.get("usage") or {}
        return cls(
            id=message.get("id", ""),
            model=message.get("model", ""),
            content=list(message.get("content") or []),
            stop_reason=message.get("stop_reason"),
            stop_sequence=message.get("stop_sequence"),
            usage=Usage(input_tokens=usage.get("input_tokens", 0),
                        output_tokens=usage.get("output_tokens", 0)),
            raw=message,
            request_id=request_id,
            metrics=metrics,
        )


@dataclass(frozen=True)
class JobStatus:
    request_id: str
    status: Status
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None
    loading: bool = False  # QUEUED while its model loads (a cold start)
    estimated_start: str | None = None  # when that load should end, if known
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> JobStatus:
        return cls(
            request_id=body["request_id"],
            status=Status(body["status"]),
            created_at=body.get("created_at"),
            started_at=body.get("started_at"),
            completed_at=body.get("completed_at"),
            queue_position=body.get("queue_position"),
            error=body.get("error"),
            error_type=body.get("error_type"),
            loading=bool(body.get("loading")),
            estimated_start=body.get("estimated_start"),
            raw=body,
        )
