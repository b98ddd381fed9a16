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
    """200 while this process admits (and runs) requests, with the state of each model it
    serves: a model whose upstream cools down is reported, not counted against the
    process."""
    runtime = request.app.state.runtime
    served = runtime.models if runtime.worker is None else runtime.worker.models
    try:
        states = await runtime.model_states()
    except Exception:  # the database is down: say what this process knows
        states = {spec.slug: spec.state() for spec in runtime.models}
    models = {spec.slug: states[spec.slug] for spec in served}
    if runtime.ready:
        return JSONResponse({"status": "ready", "models": models})
    reason = "shutting down" if runtime.draining else "worker not running"
    return JSONResponse({"status": "not ready", "reason": reason, "models": models},
                        status_code=503)
