"""API key authentication, as a FastAPI dependency."""

from __future__ import annotations

from fastapi import Request

from stratus.accounts import Account
from stratus.errors import AuthenticationFailed


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def require_account(request: Request) -> Account:
    key = presented_key(request)
    if key is None:
        raise AuthenticationFailed(
            "missing API key: send it as 'x-api-key: KEY' or 'Authorization: Bearer KEY'")
    account = await request.app.state.runtime.accounts.authenticate(key)
    request.state.account = account
    return account
