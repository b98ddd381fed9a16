"""HTTP routes: ``GET /v1/models``, ``GET /v1/models/{model_id}``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stratus.api._auth import CallerDep
from stratus.api.models import serving

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request, caller: CallerDep) -> JSONResponse:
    return JSONResponse(await serving.model_list(request.app.state.runtime, caller))


@router.get("/v1/models/{model_id}")
async def get_model(model_id: str, request: Request, caller: CallerDep) -> JSONResponse:
    return JSONResponse(await serving.model_card(request.app.state.runtime, caller, model_id))
