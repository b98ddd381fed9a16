"""The one place where errors become HTTP responses, in the shape of the surface the request
came in on: Segmind's ``{"error", "type", "request_id"}``, Anthropic's
``{"type": "error", "error": {"type", "message"}}`` (routes under ``/v1/messages``) or
OpenAI's ``{"error": {"message", "type", "param", "code"}}`` (``/v1/chat/completions``)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from stratus.api._middleware import ANTHROPIC_PREFIX, OPENAI_PREFIX, under
from stratus.errors import (
    InsufficientCredits,
    InternalError,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServiceError,
)

log = logging.getLogger("stratus.api")


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "")


# HTTP status -> error type, as Anthropic names them (the OpenAI shape uses them too)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    406: "billing_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def segmind_error(request: Request, error: ServiceError) -> JSONResponse:
    body = {"error": error.message, "type": error.kind, "request_id": request_id_of(request)}
    body.update(error.extra)
    headers = {"x-request-id": body["request_id"], **error.headers}
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def anthropic_error_body(error: ServiceError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(error.status_code, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def anthropic_error(request: Request, error: ServiceError) -> JSONResponse:
    request_id = error.extra.get("request_id") or request_id_of(request)
    body = {**anthropic_error_body(error), "request_id": request_id}
    headers = {"request-id": request_id, "x-request-id": request_id, **error.headers}
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def openai_error_body(error: ServiceError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(error.status_code, "api_error")
    return {"error": {"message": error.message, "type": kind, "param": None, "code": None}}


def openai_error(request: Request, error: ServiceError) -> JSONResponse:
    request_id = error.extra.get("request_id") or request_id_of(request)
    body = openai_error_body(error)
    headers = {"x-request-id": request_id, **error.headers}
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def render(request: Request, error: ServiceError) -> JSONResponse:
    if under(request.url.path, ANTHROPIC_PREFIX):
        return anthropic_error(request, error)
    if under(request.url.path, OPENAI_PREFIX):
        return openai_error(request, error)
    return segmind_error(request, error)


def _refusal(error: ServiceError) -> str | None:
    """Why a request was refused before it was queued, for the refusals counter."""
    if isinstance(error, RateLimited):
        return "rate_limit" if error.limits is not None else "queue_full"
    if isinstance(error, InsufficientCredits):
        return "credits"
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _stratus(request: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, RateLimited) and exc.limits is not None:
            request.state.limits = exc.limits
        refusal = _refusal(exc)
        if refusal is not None:
            request.app.state.runtime.telemetry.refusals.labels(refusal).inc()
        return render(request, exc)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error: ServiceError = NotFound(
                f"no route {request.method} {request.url.path}: see the README for the API")
        elif exc.status_code == 405:
            error = _MethodNotAllowed(
                f"{request.method} is not allowed on {request.url.path}")
        elif exc.status_code < 500:
            error = InvalidRequest(str(exc.detail))
        else:
            error = InternalError(str(exc.detail))
        return render(request, error)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or err['loc'][0]}: {err['msg']}"
            for err in exc.errors())
        return render(request, InvalidRequest(problems))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(request, InternalError(
            "internal server error: the request id identifies it in the server log"))


class _MethodNotAllowed(ServiceError):
    status_code = 405
    kind = "method_not_allowed"
