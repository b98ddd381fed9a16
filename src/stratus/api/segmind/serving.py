"""The Segmind surface's logic: requests in, wire bodies out, no HTTP."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from stratus.accounts import Caller
from stratus.admission import Admission, Submission, user_id_of
from stratus.api._outcome import failure_error
from stratus.errors import (
    InvalidRequest,
)
from stratus.normalize import Normalized, check, parse_body
from stratus.protocol.jobs import (
    ResultResponse,
    SubmitResponse,
    TimeoutResponse,
)
from stratus.protocol.messages import MessagesRequest
from stratus.runtime import Runtime
from stratus.store import JobRecord, Status
from stratus.views import status_body

MAX_LONG_POLL = 60.0


class Links:
    """Absolute URLs of a job, from the base URL the client used."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def status(self, job_id: str) -> str:
        return f"{self.base}/v2/requests/{job_id}/status"

    def response(self, job_id: str) -> str:
        return f"{self.base}/v2/requests/{job_id}"

    def cancel(self, job_id: str) -> str:
        return f"{self.base}/v2/requests/{job_id}/cancel"


async def submit(runtime: Runtime, caller: Caller, model: str, raw: bytes,
                 request_id: str, idempotency_key: str | None, can_stream: bool,
                 webhook: str | None) -> tuple[Admission, Normalized | None]:
    """``can_stream``: the sync route, which also waits for the answer (only ``/v2`` can
    get no checked request back: a replay of a request whose record expired)."""
    spec = runtime.models.resolve(model)
    data, body = await runtime.offload.run(parse_body, raw, MessagesRequest, size=len(raw))
    if body.stream and not can_stream:
        raise InvalidRequest(
            "stream=true is for POST /v1/{model} and POST /v1/messages; a queued request "
            "is followed with GET /v2/requests/{id}/status")
    return await runtime.submit(Submission(
        caller, spec, model, functools.partial(check, body, spec), request_id, data,
        idempotency_key=idempotency_key, stream=bool(body.stream), webhook=webhook,
        wants_result=can_stream, body_size=len(raw),
        user_id=user_id_of((body.metadata or {}).get("user_id"), "metadata.user_id")))


def submit_body(record: JobRecord, links: Links) -> dict[str, Any]:
    return SubmitResponse(
        request_id=record.id,
        status=record.status.value,
        status_url=links.status(record.id),
        response_url=links.response(record.id),
        cancel_url=links.cancel(record.id),
        queue_position=record.queue_position,
    ).model_dump(exclude_none=True)


def status_code_of(record: JobRecord) -> int:
    return 422 if record.status is Status.FAILED else 200


def result_body(record: JobRecord,
                model_state: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """``model_state``: the state of the job's model, for a QUEUED job (see
    :func:`stratus.views.status_body`)."""
    if record.status is Status.COMPLETED:
        assert record.result is not None and record.metrics is not None
        return 200, ResultResponse(
            request_id=record.id,
            status="COMPLETED",
            output=json.dumps(record.result.to_dict()),
            metrics=record.metrics.to_dict(),
        ).model_dump(exclude={"metrics": {"cold_start_ms"}}
                     if record.metrics.cold_start_ms is None else None)
    if record.status is Status.FAILED:
        return 422, status_body(record)
    return 202, status_body(record, model_state)


def parse_wait(raw: str | None) -> float:
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise InvalidRequest(f"wait must be a number of seconds (got {raw!r})") from None
    if not 0 <= wait <= MAX_LONG_POLL:
        raise InvalidRequest(f"wait must be between 0 and {MAX_LONG_POLL:g} seconds")
    return wait


def sync_outcome(record: JobRecord, links: Links) -> tuple[int, dict[str, Any]]:
    """The response of ``POST /v1/{model}`` once its wait is over."""
    if record.status is Status.COMPLETED:
        assert record.result is not None
        return 200, record.result.to_dict()
    if record.status is Status.FAILED:
        raise failure_error(record)
    return 504, TimeoutResponse(
        error=("the request is still running past the sync timeout; it was not lost: "
               "fetch its result from response_url"),
        request_id=record.id,
        status=record.status.value,
        status_url=links.status(record.id),
        response_url=links.response(record.id),
    ).model_dump()
