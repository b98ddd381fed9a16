"""Admin operations on keys and credits (the CLI's ``keys`` and ``credits``, over HTTP)."""

from __future__ import annotations

from typing import Any

from stratus.accounts import Account, KeyOptions, to_nano
from stratus.api.account.serving import credits_body, key_body
from stratus.errors import InvalidRequest, NotFound
from stratus.normalize import parse_json, parse_model
from stratus.protocol.accounts import AddCredits, CreateKey, SetCredits
from stratus.runtime import Runtime
from stratus.views import iso


def admin_account_body(account: Account) -> dict[str, Any]:
    return {"id": account.id, "name": account.name, "credits": credits_body(account),
            "webhook_url": account.webhook_url, "created_at": iso(account.created_at)}


def check_models(runtime: Runtime, models: list[str] | None) -> tuple[str, ...] | None:
    if models is None:
        return None
    if not models:
        raise InvalidRequest("models must name at least one model (or be null for all)")
    for name in models:
        try:
            runtime.models.resolve(name)
        except NotFound as exc:
            raise InvalidRequest(f"models: {exc.message}") from None
    return tuple(models)


async def create_key(runtime: Runtime, raw: bytes) -> dict[str, Any]:
    body = parse_model(parse_json(raw), CreateKey)
    options = KeyOptions(admin=body.admin, models=check_models(runtime, body.models),
                         requests_per_minute=body.requests_per_minute,
                         tokens_per_minute=body.tokens_per_minute)
    credits = None if body.credits is None else to_nano(body.credits)
    key, secret = await runtime.accounts.create_key(body.account, body.name, None, options,
                                                    credits)
    return {"key": key_body(key), "secret": secret}


async def list_keys(runtime: Runtime) -> dict[str, Any]:
    return {"object": "list", "data": [key_body(k) for k in await runtime.accounts.list_keys()]}


async def revoke_key(runtime: Runtime, key_id: str) -> dict[str, Any]:
    return key_body(await runtime.accounts.revoke_key(key_id))


async def list_accounts(runtime: Runtime) -> dict[str, Any]:
    accounts = await runtime.accounts.list_accounts()
    return {"object": "list", "data": [admin_account_body(a) for a in accounts]}


async def get_account(runtime: Runtime, name: str) -> dict[str, Any]:
    return admin_account_body(await runtime.accounts.account(name))


async def add_credits(runtime: Runtime, name: str, raw: bytes) -> dict[str, Any]:
    body = parse_model(parse_json(raw), AddCredits)
    account = await runtime.accounts.add_credits(name, to_nano(body.amount), body.note)
    return admin_account_body(account)


async def set_credits(runtime: Runtime, name: str, raw: bytes) -> dict[str, Any]:
    body = parse_model(parse_json(raw), SetCredits)
    balance = None if body.balance is None else to_nano(body.balance)
    account = await runtime.accounts.set_credits(name, balance, body.note)
    return admin_account_body(account)
