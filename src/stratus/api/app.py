"""The ASGI application: routers, error handlers, middleware, and the runtime's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from stratus.api import _errors, _openapi, docs, health, metrics
from stratus.api._middleware import RequestIdMiddleware
from stratus.api.account.router import router as account_router
from stratus.api.admin.router import router as admin_router
from stratus.api.anthropic.router import router as anthropic_router
from stratus.api.batches.router import router as batches_router
from stratus.api.console.router import router as console_router
from stratus.api.models.router import router as models_router
from stratus.api.openai.router import router as openai_router
from stratus.api.segmind.router import router as segmind_router
from stratus.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="Stratus", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.include_router(health.router)
    app.include_router(metrics.router)
    if runtime.role == "worker":  # a worker's HTTP is its health, nothing else
        _errors.install(app)
        return app
    app.include_router(admin_router)
    app.include_router(account_router)
    app.include_router(models_router)
    app.include_router(console_router)  # the web console: pages only, not in /openapi.json
    app.include_router(batches_router)
    app.include_router(anthropic_router)  # these before /v1/{model}, which would match them
    app.include_router(openai_router)
    app.include_router(segmind_router)
    _errors.install(app)
    _openapi.install(app)
    docs.install(app)
    app.add_middleware(RequestIdMiddleware)
    return app
