"""HTTP routes of the Segmind surface: ``/v1/{model}``, ``/v2/...``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from stratus.accounts import Caller
from stratus.api._auth import CallerDep
from stratus.api._body import read_body
from stratus.api._headers import cost_headers, ended_headers, noting_end
from stratus.api._outcome import refuse_if_failed
from stratus.api._sse import message_events
from stratus.api.segmind import serving
from stratus.engines import GenerationRequest
from stratus.errors import Conflict
from stratus.normalize import Normalized
from stratus.runtime import Runtime
from stratus.store import JobRecord

router = APIRouter()


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _submit(request: Request, caller: Caller, model: str,
                  can_stream: bool) -> tuple[JobRecord, Normalized | None]:
    runtime = _runtime(request)
    runtime.models.resolve(model)
    raw = await read_body(request, runtime.config.server.max_body_bytes)
    admission, normalized = await serving.submit(
        runtime, caller, model, raw, request.state.request_id,
        request.headers.get("idempotency-key"), can_stream, request.query_params.get("webhook"))
    request.state.limits = admission.limits
    request.state.model = admission.record.model  # the slug, for the request counter
    return admission.record, normalized


@router.post("/v1/{model}")
async def run_sync(model: str, request: Request, caller: CallerDep) -> Response:
    record, normalized = await _submit(request, caller, model, can_stream=True)
    assert normalized is not None  # a route that waits gets a 404 for an expired replay
    runtime = _runtime(request)
    if normalized.stream:
        refuse_if_failed(record)
        return StreamingResponse(
            message_events(runtime, record, model, normalized.input_tokens,
                           on_end=noting_end(request)),
            media_type="text/event-stream",
            headers={"x-request-id": record.id, "cache-control": "no-cache"})
    record = await runtime.wait_until_ended(record, runtime.config.server.sync_timeout)
    status, body = serving.sync_outcome(record, serving.Links(str(request.base_url)))
    return JSONResponse(body, status_code=status,
                        headers={"x-request-id": record.id, **ended_headers(request, record)})


@router.post("/v2/{model}")
async def submit(model: str, request: Request, caller: CallerDep) -> JSONResponse:
    record, _ = await _submit(request, caller, model, can_stream=False)
    body = serving.submit_body(record, serving.Links(str(request.base_url)))
    return JSONResponse(body, headers={"x-request-id": record.id})


@router.get("/v2/requests/{request_id}/status")
async def status(request_id: str, request: Request, caller: CallerDep,
                 wait: str | None = None) -> JSONResponse:
    runtime = _runtime(request)
    timeout = serving.parse_wait(wait)
    record = await runtime.job_for(caller.account, request_id)
    record = await runtime.wait_for_change(record, timeout)
    body = serving.status_body(record, await runtime.queued_model_state(record))
    return JSONResponse(body, status_code=serving.status_code_of(record),
                        headers=cost_headers(record))


@router.get("/v2/requests/{request_id}/stream")
async def stream(request_id: str, request: Request, caller: CallerDep) -> Response:
    runtime = _runtime(request)
    record = await runtime.job_for(caller.account, request_id)
    spec = runtime.models.resolve(record.model)
    input_tokens = record.input_tokens
    if input_tokens is None:  # a job queued before its count was kept
        input_tokens = await spec.engine.count_tokens(
            GenerationRequest.model_validate(record.request))
    return StreamingResponse(
        message_events(runtime, record, record.requested_model, input_tokens, watch=True),
        media_type="text/event-stream",
        headers={"x-request-id": record.id, "cache-control": "no-cache"})


@router.get("/v2/requests/{request_id}")
async def result(request_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    runtime = _runtime(request)
    record = await runtime.job_for(caller.account, request_id)
    code, body = serving.result_body(record, await runtime.queued_model_state(record))
    return JSONResponse(body, status_code=code, headers=cost_headers(record))


@router.post("/v2/requests/{request_id}/cancel")
async def cancel(request_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    record, cancelled = await _runtime(request).cancel(caller.account, request_id)
    if not cancelled:
        raise Conflict(f"request {request_id} has already ended {record.status.value}: "
                       "only QUEUED or PROCESSING requests can be cancelled",
                       extra={"status": record.status.value})
    return JSONResponse(serving.status_body(record))
