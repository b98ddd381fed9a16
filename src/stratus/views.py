"""Wire views of a job that more than one consumer sends: the status body (the Segmind
status route and webhooks) and timestamps as ISO 8601."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stratus.protocol.jobs import StatusResponse
from stratus.store import JobRecord, Status


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def status_body(record: JobRecord, model_state: Mapping[str, Any] | None = None,
                ) -> dict[str, Any]:
    """``model_state``: the state of the job's model; a QUEUED job whose model is loading
    says so, with when the load should end if a load was timed before."""
    loading = (record.status is Status.QUEUED and model_state is not None
               and model_state.get("state") == "loading")
    return StatusResponse(
        request_id=record.id,
        status=record.status.value,
        queue_position=record.queue_position,
        created_at=iso(record.created_at) or "",
        started_at=iso(record.started_at),
        completed_at=iso(record.completed_at),
        error=record.error,
        error_type=record.error_type,
        loading=True if loading else None,
        estimated_start=iso(model_state.get("estimated_ready_at"))
        if loading and model_state is not None else None,
    ).model_dump(exclude_none=True)
