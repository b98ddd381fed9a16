"""The caller's own account, request history and usage: requests in, wire bodies out, no HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from stratus.accounts import (
    Account,
    ApiKey,
    Caller,
    DeliveryAttempt,
    HistoryQuery,
    RequestEntry,
    UsageRow,
    to_usd,
)
from stratus.errors import InvalidRequest, NotFound
from stratus.normalize import parse_json, parse_model
from stratus.protocol.accounts import WebhookSetting
from stratus.runtime import Runtime
from stratus.store import Status
from stratus.views import iso
from stratus.webhooks import check_url, webhook_id

MAX_PAGE = 100
DAY = 86400
MAX_USAGE_DAYS = 366


def credits_body(account: Account) -> dict[str, Any]:
    available = account.available
    return {
        "currency": "USD",
        "unlimited": account.balance is None,
        "balance": None if account.balance is None else to_usd(account.balance),
        "reserved": to_usd(account.reserved),
        "available": None if available is None else to_usd(max(available, 0)),
    }


def key_body(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id, "name": key.name, "prefix": key.prefix, "account": key.account_name,
        "admin": key.options.admin,
        "models": list(key.options.models) if key.options.models is not None else None,
        "rate_limits": {"requests_per_minute": key.options.requests_per_minute,
                        "tokens_per_minute": key.options.tokens_per_minute},
        "created_at": iso(key.created_at), "revoked_at": iso(key.revoked_at),
    }


def account_body(caller: Caller) -> dict[str, Any]:
    account = caller.account
    return {
        "id": account.id, "name": account.name,
        "credits": credits_body(account),
        "key": key_body(caller.key),
        "webhook": {"url": account.webhook_url, "secret": account.webhook_secret},
    }


async def set_webhook(runtime: Runtime, caller: Caller, raw: bytes) -> dict[str, Any]:
    body = parse_model(parse_json(raw), WebhookSetting)
    url = body.url
    if url is not None:
        url = await check_url(url, allow_private=runtime.config.webhooks.allow_private)
    account = await runtime.accounts.set_webhook(caller.account.id, url)
    return {"url": account.webhook_url, "secret": account.webhook_secret}


def entry_body(entry: RequestEntry) -> dict[str, Any]:
    return {
        "request_id": entry.id,
        "model": entry.model,
        "slug": entry.slug,
        "status": entry.status,
        "credits_deduction": to_usd(entry.cost) if entry.cost is not None else None,
        "credits_reserved": to_usd(entry.reserved) if entry.completed_at is None else None,
        "latency_ms": entry.latency_ms,
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "created_at": iso(entry.created_at),
        "started_at": iso(entry.started_at),
        "completed_at": iso(entry.completed_at),
        "error": entry.error,
        "error_type": entry.error_type,
        "key_id": entry.key_id,
        "user_id": entry.user_id,
        "webhook": None if entry.webhook_url is None else {
            "url": entry.webhook_url, "status": entry.webhook_status,
            "webhook_id": webhook_id(entry.id)},
    }


def _time(name: str, raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{name} must be an ISO 8601 date or time (2026-11-28, 2026-11-28T10:00:00Z) "
            f"or Unix seconds (got {raw!r})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def history_query(params: dict[str, str]) -> HistoryQuery:
    known = {"status", "model", "since", "until", "limit", "after_id"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}: use "
                             f"{', '.join(sorted(known))}")
    status = params.get("status")
    if status is not None and status.upper() not in Status.__members__:
        raise InvalidRequest(f"status must be one of {', '.join(Status.__members__)} "
                             f"(got {status!r})")
    try:
        limit = int(params.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return HistoryQuery(status=status.upper() if status else None, model=params.get("model"),
                        since=_time("since", params.get("since")),
                        until=_time("until", params.get("until")),
                        limit=limit, after_id=params.get("after_id"))


async def history(runtime: Runtime, caller: Caller, params: dict[str, str]) -> dict[str, Any]:
    query = history_query(params)
    accounts = runtime.accounts
    if query.after_id is not None and await accounts.request(caller.account.id,
                                                             query.after_id) is None:
        raise InvalidRequest(f"after_id {query.after_id!r} is not a request of this account "
                             "(or it is past the history's retention)")
    entries, more = await accounts.history(caller.account.id, query)
    return {
        "object": "list",
        "data": [entry_body(entry) for entry in entries],
        "has_more": more,
        "first_id": entries[0].id if entries else None,
        "last_id": entries[-1].id if entries else None,
    }


async def entry(runtime: Runtime, caller: Caller, request_id: str) -> RequestEntry:
    found = await runtime.accounts.request(caller.account.id, request_id)
    if found is None:
        ttl = runtime.config.server.history_ttl
        kept = f"{ttl / 86400:g} days" if ttl >= 86400 else f"{ttl:g} s"
        raise NotFound(f"no request {request_id!r} in this account's history (it is kept "
                       f"{kept})")
    return found


def attempt_body(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {"attempt": attempt.attempt, "at": iso(attempt.at), "url": attempt.url,
            "status_code": attempt.status_code, "error": attempt.error,
            "duration_ms": attempt.duration_ms}


async def webhook_log(runtime: Runtime, caller: Caller, request_id: str) -> dict[str, Any]:
    found = await entry(runtime, caller, request_id)
    if found.webhook_url is None:
        raise NotFound(f"request {request_id!r} has no webhook: pass ?webhook=URL on submit, "
                       "or set the account's default with PUT /v1/account/webhook")
    attempts = await runtime.accounts.deliveries(request_id)
    return {
        "request_id": request_id, "webhook_id": webhook_id(request_id),
        "url": found.webhook_url,
        "status": found.webhook_status or "waiting",  # waiting: the request has not ended
        "attempts": [attempt_body(attempt) for attempt in attempts],
    }


async def content(runtime: Runtime, caller: Caller, request_id: str) -> dict[str, Any]:
    """What the request asked and what it answered, while its job record is kept."""
    record = await runtime.job_for(caller.account, request_id)
    return {
        "request_id": record.id, "status": record.status.value,
        "model": record.requested_model,
        "input": _without_image_bytes(record.request),
        "output": None if record.result is None else record.result.to_dict(),
        "metrics": None if record.metrics is None else record.metrics.to_dict(),
        "error": record.error, "expires_at": iso(record.expires_at),
    }


def _without_image_bytes(value: Any) -> Any:
    """``value`` with each inline image's base64 ``data`` replaced by its size in bytes."""
    if isinstance(value, list):
        return [_without_image_bytes(item) for item in value]
    if not isinstance(value, dict):
        return value
    if value.get("type") == "image" and isinstance(value.get("data"), str):
        data = value["data"]
        return {**value, "data": None,
                "data_bytes": len(data) * 3 // 4 - data[-2:].count("=")}
    return {name: _without_image_bytes(item) for name, item in value.items()}


def usage_days(params: dict[str, str]) -> int:
    unknown = sorted(set(params) - {"days"})
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}: use days")
    try:
        days = int(params.get("days", "30"))
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_USAGE_DAYS:
        raise InvalidRequest(f"days must be a whole number from 1 to {MAX_USAGE_DAYS}")
    return days


def _totals(rows: Iterable[UsageRow]) -> dict[str, Any]:
    rows = list(rows)
    return {
        "requests": sum(r.requests for r in rows),
        "completed": sum(r.completed for r in rows),
        "failed": sum(r.failed for r in rows),
        "input_tokens": sum(r.input_tokens for r in rows),
        "output_tokens": sum(r.output_tokens for r in rows),
        "cost": to_usd(sum(r.cost for r in rows)),
    }


def _per_model(rows: list[UsageRow]) -> list[dict[str, Any]]:
    slugs = sorted({row.slug for row in rows})
    return [{"model": slug, **_totals(r for r in rows if r.slug == slug)} for slug in slugs]


def usage_body(rows: list[UsageRow], first_day: int, now: float) -> dict[str, Any]:
    """The wire report of ``rows``: the span's totals, per model, and per day from
    ``first_day`` to the day of ``now`` (each day present, with or without requests)."""
    daily = []
    for day in range(first_day, int(now // DAY) + 1):
        of_day = [row for row in rows if row.day == day]
        date = datetime.fromtimestamp(day * DAY, UTC).date().isoformat()
        daily.append({"date": date, **_totals(of_day), "models": _per_model(of_day)})
    return {
        "object": "usage", "currency": "USD",
        "since": iso(first_day * DAY), "until": iso(now),
        "total": _totals(rows), "models": _per_model(rows), "daily": daily,
    }


async def usage(runtime: Runtime, caller: Caller, params: dict[str, str]) -> dict[str, Any]:
    days = usage_days(params)
    now = time.time()
    first_day = int(now // DAY) - days + 1
    rows = await runtime.accounts.usage(caller.account.id, first_day * DAY, now)
    return usage_body(rows, first_day, now)
