"""HTTP route of the OpenAI-compatible surface: ``POST /v1/chat/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from stratus.api._auth import CallerDep
from stratus.api._body import read_body
from stratus.api._headers import ended_headers, noting_end
from stratus.api._outcome import refuse_if_failed
from stratus.api.openai import serving
from stratus.runtime import Runtime

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, caller: CallerDep) -> Response:
    runtime: Runtime = request.app.state.runtime
    raw = await read_body(request, runtime.config.server.max_body_bytes)
    admission, normalized, body = await serving.create(
        runtime, caller, raw, request.state.request_id, request.headers.get("idempotency-key"),
        request.query_params.get("webhook"))
    request.state.limits = admission.limits
    request.state.model = admission.record.model  # the slug, for the request counter
    record = admission.record
    headers = {"x-request-id": record.id}
    if normalized.stream:
        refuse_if_failed(record)
        return StreamingResponse(serving.chunks(runtime, record, body, noting_end(request)),
                                 media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache"})
    record = await runtime.wait_until_ended(record, runtime.config.server.sync_timeout)
    completion = serving.completion(record, body.model)
    return JSONResponse(completion, headers={**headers, **ended_headers(request, record)})
