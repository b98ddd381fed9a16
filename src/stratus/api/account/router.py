"""HTTP routes of the caller's own account: ``/v1/account``, ``/v1/requests`` (history),
``/v1/usage``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stratus.api._auth import CallerDep
from stratus.api._body import SETTINGS_BODY, read_body
from stratus.api.account import serving
from stratus.runtime import Runtime

router = APIRouter()


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


@router.get("/v1/account")
async def account(caller: CallerDep) -> JSONResponse:
    return JSONResponse(serving.account_body(caller))


@router.put("/v1/account/webhook")
async def set_webhook(request: Request, caller: CallerDep) -> JSONResponse:
    runtime = _runtime(request)
    raw = await read_body(request, SETTINGS_BODY)
    return JSONResponse(await serving.set_webhook(runtime, caller, raw))


@router.get("/v1/requests")
async def history(request: Request, caller: CallerDep) -> JSONResponse:
    params = dict(request.query_params)
    return JSONResponse(await serving.history(_runtime(request), caller, params))


@router.get("/v1/requests/{request_id}")
async def history_entry(request_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    found = await serving.entry(_runtime(request), caller, request_id)
    return JSONResponse(serving.entry_body(found))


@router.get("/v1/requests/{request_id}/webhook")
async def webhook_log(request_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    return JSONResponse(await serving.webhook_log(_runtime(request), caller, request_id))


@router.get("/v1/requests/{request_id}/content")
async def request_content(request_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    return JSONResponse(await serving.content(_runtime(request), caller, request_id))


@router.get("/v1/usage")
async def usage(request: Request, caller: CallerDep) -> JSONResponse:
    params = dict(request.query_params)
    return JSONResponse(await serving.usage(_runtime(request), caller, params))
