"""The one place where errors become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from stratus.errors import (
    InternalError,
    InvalidRequest,
    NotFound,
    ServiceError,
)

log = logging.getLogger("stratus.api")


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "")


def segmind_error(request: Request, error: ServiceError) -> JSONResponse:
    body = {"error": error.message, "type": error.kind, "request_id": request_id_of(request)}
    body.update(error.extra)
    headers = {"x-request-id": body["request_id"], **error.headers}
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _stratus(request: Request, exc: ServiceError) -> JSONResponse:
        return segmind_error(request, exc)

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
        return segmind_error(request, error)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or err['loc'][0]}: {err['msg']}"
            for err in exc.errors())
        return segmind_error(request, InvalidRequest(problems))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return segmind_error(request, InternalError(
            "internal server error: the request id identifies it in the server log"))


class _MethodNotAllowed(ServiceError):
    status_code = 405
    kind = "method_not_allowed"
