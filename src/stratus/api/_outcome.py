"""What an ended (or still running) job means for a client waiting on it, on any surface."""

from __future__ import annotations

from stratus.api._headers import cost_headers
from stratus.errors import (
    ContentBlocked,
    EngineFailed,
    GatewayTimeout,
    InvalidRequest,
    ServiceError,
    UnprocessableRequest,
)
from stratus.store import ErrorType, JobRecord, Message, Status


def failure_error(record: JobRecord) -> ServiceError:
    """The error a FAILED job is reported as on a route that waited for it: timeout 504,
    engine 502, content policy and a request the engine refused 400, else 422."""
    message = record.error or "the request failed"
    extra = {"request_id": record.id, "status": "FAILED"}
    kind: type[ServiceError] = UnprocessableRequest
    if record.error_type == ErrorType.POLICY:
        kind = ContentBlocked
    elif record.error_type == ErrorType.INVALID:
        kind = InvalidRequest
    elif record.error_type == ErrorType.TIMEOUT:
        kind = GatewayTimeout
    elif record.error_type in (ErrorType.ENGINE, ErrorType.WORKER_LOST):
        kind = EngineFailed
    return kind(message, extra=extra, headers=cost_headers(record))


def refuse_if_failed(record: JobRecord) -> None:
    """Before a stream starts: a job that is already FAILED (its input was blocked) is
    answered with its error, not with a stream that only carries it."""
    if record.status is Status.FAILED:
        raise failure_error(record)


def ended_result(record: JobRecord) -> Message:
    """The stored message of a COMPLETED job; the job's error if it FAILED; a 504 that says
    where to fetch it if it is still running after the sync wait."""
    if record.status is Status.FAILED:
        raise failure_error(record)
    if record.status is not Status.COMPLETED or record.result is None:
        raise GatewayTimeout(
            f"the request is still running past the sync timeout; it was not lost: fetch it "
            f"with GET /v2/requests/{record.id}", extra={"request_id": record.id})
    return record.result

