"""Wire views of a job that more than one consumer sends: the status body (the Segmind
status route and webhooks) and timestamps as ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stratus.protocol.jobs import StatusResponse
from stratus.store import JobRecord


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def status_body(record: JobRecord) -> dict[str, Any]:
    return StatusResponse(
        request_id=record.id,
        status=record.status.value,
        queue_position=record.queue_position,
        created_at=iso(record.created_at) or "",
        started_at=iso(record.started_at),
        completed_at=iso(record.completed_at),
        error=record.error,
        error_type=record.error_type,
    ).model_dump(exclude_none=True)
