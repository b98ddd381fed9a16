"""API key authentication and admin scope, as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stratus.accounts import Caller
from stratus.errors import AuthenticationFailed, PermissionDenied


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def require_caller(request: Request) -> Caller:
    key = presented_key(request)
    if key is None:
        raise AuthenticationFailed(
            "missing API key: send it as 'x-api-key: KEY' or 'Authorization: Bearer KEY'")
    caller = await request.app.state.runtime.accounts.authenticate(key)
    request.state.caller = caller
    return caller


async def require_admin(request: Request) -> Caller:
    caller = await require_caller(request)
    if not caller.key.options.admin:
        raise PermissionDenied(
            f"{request.method} {request.url.path} needs an admin key: create one with "
            "`stratus keys create --admin`")
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]
AdminDep = Annotated[Caller, Depends(require_admin)]
