"""What an ended (or still running) job means for a client waiting on it, on any surface."""

from __future__ import annotations

from typing import Any

from stratus.api._headers import cost_headers
from stratus.errors import (
    ContentBlocked,
    EngineFailed,
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceError,
    UnprocessableRequest,
)
from stratus.store import ErrorType, JobRecord, Message, Status

_FAILURES: dict[str, type[ServiceError]] = {
    ErrorType.POLICY: ContentBlocked,
    ErrorType.INVALID: InvalidRequest,
    ErrorType.NOT_FOUND: NotFound,
    ErrorType.PERMISSION: PermissionDenied,
    ErrorType.TIMEOUT: GatewayTimeout,
    ErrorType.ENGINE: EngineFailed,
    ErrorType.WORKER_LOST: EngineFailed,
}


def error_of(error_type: str | None, message: str, **kwargs: Any) -> ServiceError:
    """The error a job that ended FAILED with ``error_type`` is reported as: timeout 504,
    engine 502, content policy and a request refused as invalid 400, a batch's request for
    an unknown model 404 or one its key may not use 403, else 422."""
    return _FAILURES.get(error_type or "", UnprocessableRequest)(message, **kwargs)


def failure_error(record: JobRecord) -> ServiceError:
    """The error a FAILED job is reported as on a route that waited for it."""
    return error_of(record.error_type, record.error or "the request failed",
                    extra={"request_id": record.id, "status": "FAILED"},
                    headers=cost_headers(record))


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

