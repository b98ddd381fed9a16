"""Liveness and readiness: no key needed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    if runtime.ready:
        return JSONResponse({"status": "ready"})
    reason = "shutting down" if runtime.draining else "worker not running"
    return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
