"""HTTP routes of the Anthropic surface: ``POST /v1/messages``, ``/v1/messages/count_tokens``.

The ``anthropic-version`` and ``anthropic-beta`` headers are accepted and ignored. Every
response carries ``request-id``; errors use Anthropic's shape (``stratus.api._errors``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from stratus.accounts import Account
from stratus.api._auth import require_account
from stratus.api._body import read_body
from stratus.api._sse import message_events
from stratus.api.anthropic import serving
from stratus.runtime import Runtime

router = APIRouter()
AccountDep = Annotated[Account, Depends(require_account)]


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


@router.post("/v1/messages")
async def create_message(request: Request, account: AccountDep) -> Response:
    runtime = _runtime(request)
    raw = await read_body(request, runtime.config.server.max_body_bytes)
    record, normalized, model = await serving.create(
        runtime, account, raw, request.state.request_id, request.headers.get("idempotency-key"))
    headers = {"request-id": record.id, "x-request-id": record.id}
    if normalized.stream:
        return StreamingResponse(
            message_events(runtime, record, model, normalized.input_tokens),
            media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})
    record = await runtime.wait_until_ended(record, runtime.config.server.sync_timeout)
    return JSONResponse(serving.message_of(record), headers=headers)


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, account: AccountDep) -> JSONResponse:
    runtime = _runtime(request)
    raw = await read_body(request, runtime.config.server.max_body_bytes)
    rid = request.state.request_id
    return JSONResponse(serving.count_tokens(runtime, raw), headers={"request-id": rid})
