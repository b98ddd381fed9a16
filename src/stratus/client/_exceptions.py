"""Exceptions the SDK raises. Every one is a :class:`StratusError`.

    StratusError
    ├── APIConnectionError          the server could not be reached
    │   └── APITimeoutError         ... or did not answer in time
    ├── APIStatusError              the server answered with an error status
    │   ├── BadRequestError             400
    │   ├── AuthenticationError         401
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404
    │   ├── InsufficientCreditsError    406
    │   ├── ConflictError               409
    │   ├── RequestTooLargeError        413
    │   ├── UnprocessableEntityError    422
    │   ├── RateLimitError              429
    │   └── InternalServerError         5xx
    ├── InferenceFailed             the request ended FAILED (``.error`` says why)
    ├── InferenceTimeout            it did not end within the time you gave it
    └── InferencePending            its result was asked for before it ended
"""

from __future__ import annotations

from typing import Any

import httpx


class StratusError(Exception):
    pass


class APIConnectionError(StratusError):
    def __init__(self, message: str = "could not reach the Stratus server") -> None:
        super().__init__(message)
        self.message = message


class APITimeoutError(APIConnectionError):
    def __init__(self, message: str = "the Stratus server did not answer in time") -> None:
        super().__init__(message)


class APIStatusError(StratusError):
    status_code: int = 0

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(f"{response.status_code}: {message}")
        self.message = message
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.type = body.get("type") if isinstance(body, dict) else None
        self.request_id = (body.get("request_id") if isinstance(body, dict) else None) or \
            response.headers.get("x-request-id")


class BadRequestError(APIStatusError):
    status_code = 400


class AuthenticationError(APIStatusError):
    status_code = 401


class PermissionDeniedError(APIStatusError):
    status_code = 403


class NotFoundError(APIStatusError):
    status_code = 404


class InsufficientCreditsError(APIStatusError):
    status_code = 406


class ConflictError(APIStatusError):
    status_code = 409


class RequestTooLargeError(APIStatusError):
    status_code = 413


class UnprocessableEntityError(APIStatusError):
    status_code = 422


class RateLimitError(APIStatusError):
    status_code = 429


class InternalServerError(APIStatusError):
    pass


class InferenceFailed(StratusError):
    def __init__(self, request_id: str, error: str | None, error_type: str | None = None,
                 body: Any = None) -> None:
        super().__init__(f"request {request_id} failed: {error}")
        self.request_id = request_id
        self.error = error
        self.error_type = error_type
        self.body = body


class InferenceTimeout(StratusError):
    def __init__(self, request_id: str, timeout: float | None, status: str | None = None) -> None:
        waited = f" within {timeout:g} s" if timeout is not None else ""
        super().__init__(f"request {request_id} did not finish{waited} (last status: {status}); "
                         "it is still running: wait on it again with its request_id")
        self.request_id = request_id
        self.timeout = timeout
        self.status = status


class InferencePending(StratusError):
    def __init__(self, request_id: str, status: str) -> None:
        super().__init__(f"request {request_id} is still {status}: call wait() for its result")
        self.request_id = request_id
        self.status = status


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    406: InsufficientCreditsError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}
