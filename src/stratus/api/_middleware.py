"""Pure-ASGI middleware: a request id on every request and every response, and the
caller's rate-limit headers on every response of a request that was checked against them."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stratus._logs import REQUESTS
from stratus.api._headers import limit_headers

ANTHROPIC_PREFIX = "/v1/messages"
OPENAI_PREFIX = "/v1/chat/completions"
# the surface a path belongs to, for the request counter (first match; else segmind's)
SURFACES = ((ANTHROPIC_PREFIX, "anthropic"), (OPENAI_PREFIX, "openai"),
            ("/v1/models", "models"), ("/v1/account", "account"), ("/v1/requests", "account"),
            ("/v1/usage", "account"), ("/v1/admin", "admin"), ("/health", "ops"),
            ("/ready", "ops"), ("/metrics", "ops"), ("/docs", "ops"), ("/openapi.json", "ops"),
            ("/console", "console"), ("/", "console"))


def surface(path: str) -> str:
    return next((name for prefix, name in SURFACES if under(path, prefix)), "segmind")


def under(path: str, prefix: str) -> bool:
    """Is ``path`` the route ``prefix`` or below it (``/v1/messagesx`` is not)?"""
    return path == prefix or path.startswith(prefix + "/")


class RequestIdMiddleware:
    """Gives each HTTP request an id (``request.state.request_id``) and sends it back as
    ``x-request-id``. A request that creates a job uses this id as the job's ``request_id``.
    A route (or error) that sets ``request.state.limits`` gets the rate-limit headers. Each
    response is counted by surface, model (a route that queued a job sets
    ``request.state.model``) and status code."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        anthropic = under(scope["path"], ANTHROPIC_PREFIX)
        started = time.perf_counter()
        answered: list[int] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])
                scope["app"].state.runtime.telemetry.requests.labels(
                    surface(scope["path"]), state.get("model", ""),
                    str(message["status"])).inc()
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-request-id" not in names:
                    headers.append((b"x-request-id", request_id.encode()))
                limits = state.get("limits")
                if limits is not None:
                    headers += [(name.encode(), value.encode()) for name, value
                                in limit_headers(limits, anthropic=anthropic).items()]
                message["headers"] = headers
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body") \
                    and REQUESTS.isEnabledFor(logging.INFO):
                _log(scope, state, answered[0] if answered else 0,
                     time.perf_counter() - started)

        await self.app(scope, receive, send_with_id)


def _log(scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
    """The request's line in the JSON log: who (the key's id, never the key), where, what
    it came to (the job's tokens and cost when the response carried its end)."""
    caller, ended = state.get("caller"), state.get("ended")
    usage = ended.result if ended is not None else None
    REQUESTS.info(
        "%s %s %d", scope["method"], scope["path"], status, extra={
            "request_id": state["request_id"], "key_id": caller.key.id if caller else None,
            "surface": surface(scope["path"]), "method": scope["method"],
            "path": scope["path"], "model": state.get("model"), "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "cost_usd": ended.cost if ended is not None else None})
