"""Server-side errors: plain data, raised anywhere below the API, turned into HTTP in one place.

Each error knows its HTTP status and a short machine-readable ``kind``; the API layer
(``stratus.api._errors``) renders it in the shape of whichever surface the request came in on.

    ServiceError (the base: every server-side error)
    ├── InvalidRequest          400  the body or a parameter is wrong; the message says how
    │   └── ContentBlocked      400  the content policy blocked the request or its answer
    ├── AuthenticationFailed    401  missing, invalid or revoked API key
    ├── PermissionDenied        403  the key may not use this model or route
    ├── NotFound                404  unknown model, route, or request id (also expired / not yours)
    ├── InsufficientCredits     406  the account's credits cannot cover the request's worst case
    ├── Conflict                409  the request has already ended
    ├── PayloadTooLarge         413  the body is over the configured limit
    ├── UnprocessableRequest    422  a FAILED job, or an idempotency key reused with another body
    ├── RateLimited             429  too many requests or tokens, or a full queue (carries
    │                                ``retry_after`` and, for a key's limits, their state)
    ├── InternalError           500
    ├── EngineFailed            502  the engine or an upstream failed
    ├── Unavailable             503  the server is shutting down or not ready
    └── GatewayTimeout          504  a sync request outlived its wait (the job goes on)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class ServiceError(Exception):
    status_code: ClassVar[int] = 500
    kind: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}


class InvalidRequest(ServiceError):
    status_code = 400
    kind = "invalid_request"


class ContentBlocked(InvalidRequest):
    kind = "content_policy"


class AuthenticationFailed(ServiceError):
    status_code = 401
    kind = "authentication_error"


class PermissionDenied(ServiceError):
    status_code = 403
    kind = "permission_error"


class NotFound(ServiceError):
    status_code = 404
    kind = "not_found"


class InsufficientCredits(ServiceError):
    status_code = 406
    kind = "insufficient_credits"


class Conflict(ServiceError):
    status_code = 409
    kind = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    kind = "request_too_large"


class UnprocessableRequest(ServiceError):
    status_code = 422
    kind = "unprocessable"


class RateLimited(ServiceError):
    status_code = 429
    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, limits: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.limits = limits  # a ``stratus.limits.LimitState`` when a key's limit was hit
        self.headers.setdefault("Retry-After", str(max(1, math.ceil(retry_after))))


class InternalError(ServiceError):
    status_code = 500
    kind = "internal_error"


class EngineFailed(ServiceError):
    status_code = 502
    kind = "engine_error"


class Unavailable(ServiceError):
    status_code = 503
    kind = "unavailable"


class GatewayTimeout(ServiceError):
    status_code = 504
    kind = "timeout"


def describe(exc: BaseException) -> str:
    """An exception as a message reads it: its type, and its text when it has one (some of
    httpx's have none)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
