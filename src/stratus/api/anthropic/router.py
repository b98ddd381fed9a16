"""HTTP routes of the Anthropic surface: ``POST /v1/messages``, ``/v1/messages/count_tokens``.

The ``anthropic-version`` and ``anthropic-beta`` headers are accepted and ignored. Every
response carries ``request-id``; errors use Anthropic's shape (``stratus.api._errors``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from stratus.api._auth import CallerDep
from stratus.api._body import read_body
from stratus.api._headers import ended_headers, noting_end
from stratus.api._outcome import refuse_if_failed
from stratus.api._sse import message_events
from stratus.api.anthropic import serving
from stratus.runtime import Runtime

router = APIRouter()


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


@router.post("/v1/messages")
async def create_message(request: Request, caller: CallerDep) -> Response:
    runtime = _runtime(request)
    raw = await read_body(request, runtime.config.server.max_body_bytes)
    admission, normalized, model = await serving.create(
        runtime, caller, raw, request.state.request_id, request.headers.get("idempotency-key"),
        request.query_params.get("webhook"))
    request.state.limits = admission.limits
    request.state.model = admission.record.model  # the slug, for the request counter
    record = admission.record
    headers = {"request-id": record.id, "x-request-id": record.id}
    if normalized.stream:
        refuse_if_failed(record)
        return StreamingResponse(
            message_events(runtime, record, model, normalized.input_tokens,
                           on_end=noting_end(request)),
            media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})
    record = await runtime.wait_until_ended(record, runtime.config.server.sync_timeout)
    message = serving.message_of(record)
    return JSONResponse(message, headers={**headers, **ended_headers(request, record)})


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, caller: CallerDep) -> JSONResponse:
    runtime = _runtime(request)
    raw = await read_body(request, runtime.config.server.max_body_bytes)
    rid = request.state.request_id
    body, request.state.limits = await serving.count_tokens(runtime, caller, raw)
    return JSONResponse(body, headers={"request-id": rid})
