"""HTTP route of the OpenAI-compatible surface: ``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from stratus.accounts import Account
from stratus.api._auth import require_account
from stratus.api._body import read_body
from stratus.api.openai import serving
from stratus.runtime import Runtime

router = APIRouter()
AccountDep = Annotated[Account, Depends(require_account)]


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, account: AccountDep) -> Response:
    runtime: Runtime = request.app.state.runtime
    raw = await read_body(request, runtime.config.server.max_body_bytes)
    record, normalized, body = await serving.create(
        runtime, account, raw, request.state.request_id, request.headers.get("idempotency-key"))
    headers = {"x-request-id": record.id}
    if normalized.stream:
        return StreamingResponse(serving.chunks(runtime, record, body),
                                 media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache"})
    record = await runtime.wait_until_ended(record, runtime.config.server.sync_timeout)
    return JSONResponse(serving.completion(record, body.model), headers=headers)
