"""``GET /metrics``: Prometheus's text format (see :mod:`stratus.telemetry`). Open by default,
like ``/health``; with ``[server] metrics_auth`` it takes an admin key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from stratus.api._auth import require_admin
from stratus.telemetry import CONTENT_TYPE

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime = request.app.state.runtime
    if runtime.config.server.metrics_auth:
        await require_admin(request)
    return Response(await runtime.telemetry.render(runtime), media_type=CONTENT_TYPE)
