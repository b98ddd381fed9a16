"""HTTP routes of Anthropic's Message Batches API, under ``/v1/messages/batches`` (errors in
Anthropic's shape, ``request-id`` on every response)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from stratus.api._auth import CallerDep
from stratus.api._body import read_body
from stratus.api.batches import serving
from stratus.runtime import Runtime

router = APIRouter(prefix="/v1/messages/batches")
JSONL = "application/x-jsonl"


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _json(request: Request, body: dict) -> JSONResponse:
    return JSONResponse(body, headers={"request-id": request.state.request_id})


@router.post("")
async def create_batch(request: Request, caller: CallerDep) -> JSONResponse:
    runtime = _runtime(request)
    raw = await read_body(request, runtime.config.batches.max_body_bytes)
    return _json(request, await serving.create(runtime, caller, raw, _base(request)))


@router.get("")
async def list_batches(request: Request, caller: CallerDep) -> JSONResponse:
    return _json(request, await serving.page(_runtime(request), caller,
                                             request.query_params, _base(request)))


@router.get("/{batch_id}")
async def retrieve_batch(batch_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    return _json(request, await serving.retrieve(_runtime(request), caller, batch_id,
                                                 _base(request)))


@router.post("/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    return _json(request, await serving.cancel(_runtime(request), caller, batch_id,
                                               _base(request)))


@router.delete("/{batch_id}")
async def delete_batch(batch_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    return _json(request, await serving.delete(_runtime(request), caller, batch_id))


@router.get("/{batch_id}/results")
async def batch_results(batch_id: str, request: Request,
                        caller: CallerDep) -> StreamingResponse:
    lines = await serving.results(_runtime(request), caller, batch_id)
    return StreamingResponse(lines, media_type=JSONL,
                             headers={"request-id": request.state.request_id})
