"""Admin operations on keys and credits (the CLI's ``keys`` and ``credits``, over HTTP), and
the credits ledger."""

from __future__ import annotations

from typing import Any

from stratus.accounts import Account, KeyOptions, LedgerLine, to_nano, to_usd
from stratus.api.account.serving import credits_body, key_body
from stratus.errors import InvalidRequest, NotFound
from stratus.normalize import parse_json, parse_model
from stratus.protocol.accounts import AddCredits, CreateKey, SetCredits
from stratus.runtime import Runtime
from stratus.views import iso

MAX_PAGE = 100


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


def ledger_entry(line: LedgerLine) -> dict[str, Any]:
    return {"id": line.id, "kind": line.kind,
            "amount": None if line.amount is None else to_usd(line.amount),
            "balance_after": None if line.balance_after is None else to_usd(line.balance_after),
            "request_id": line.request_id, "note": line.note, "created_at": iso(line.created_at)}


def _whole(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high} "
                             f"(got {raw!r})")
    return value


async def ledger(runtime: Runtime, name: str, params: dict[str, str]) -> dict[str, Any]:
    """A page of the account's ledger, newest first; ``after_id`` is the previous page's
    ``last_id``."""
    unknown = sorted(set(params) - {"limit", "after_id"})
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}: use after_id, limit")
    limit = _whole("limit", params.get("limit", "20"), 1, MAX_PAGE)
    raw_after = params.get("after_id")
    after = None if raw_after is None else _whole("after_id", raw_after, 1, 2**63 - 1)
    account = await runtime.accounts.account(name)
    lines, more = await runtime.accounts.ledger(account.id, limit, after)
    return {"object": "list", "account": account.name,
            "data": [ledger_entry(line) for line in lines], "has_more": more,
            "first_id": lines[0].id if lines else None,
            "last_id": lines[-1].id if lines else None}
