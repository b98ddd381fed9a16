"""HTTP routes for admins (``/v1/admin/...``): keys and credits. Every route needs a key
created with ``admin``; any other key gets 403."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stratus.api._auth import AdminDep
from stratus.api._body import SETTINGS_BODY, read_body
from stratus.api.admin import serving
from stratus.runtime import Runtime

router = APIRouter(prefix="/v1/admin")


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _body(request: Request) -> bytes:
    return await read_body(request, SETTINGS_BODY)


@router.get("/keys")
async def list_keys(request: Request, admin: AdminDep) -> JSONResponse:
    return JSONResponse(await serving.list_keys(_runtime(request)))


@router.post("/keys")
async def create_key(request: Request, admin: AdminDep) -> JSONResponse:
    body = await serving.create_key(_runtime(request), await _body(request))
    return JSONResponse(body, status_code=201)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, admin: AdminDep) -> JSONResponse:
    return JSONResponse(await serving.revoke_key(_runtime(request), key_id))


@router.get("/accounts")
async def list_accounts(request: Request, admin: AdminDep) -> JSONResponse:
    return JSONResponse(await serving.list_accounts(_runtime(request)))


@router.get("/accounts/{name}")
async def get_account(name: str, request: Request, admin: AdminDep) -> JSONResponse:
    return JSONResponse(await serving.get_account(_runtime(request), name))


@router.post("/accounts/{name}/credits")
async def add_credits(name: str, request: Request, admin: AdminDep) -> JSONResponse:
    return JSONResponse(await serving.add_credits(_runtime(request), name,
                                                  await _body(request)))


@router.put("/accounts/{name}/credits")
async def set_credits(name: str, request: Request, admin: AdminDep) -> JSONResponse:
    return JSONResponse(await serving.set_credits(_runtime(request), name,
                                                  await _body(request)))


@router.get("/accounts/{name}/ledger")
async def ledger(name: str, request: Request, admin: AdminDep) -> JSONResponse:
    params = dict(request.query_params)
    return JSONResponse(await serving.ledger(_runtime(request), name, params))
