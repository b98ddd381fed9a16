"""The Stratus SDK: needs only httpx, imports nothing from the server."""

from stratus.client._async_client import AsyncClient, AsyncJob
from stratus.client._client import Client, Job
from stratus.client._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InferenceFailed,
    InferencePending,
    InferenceTimeout,
    InsufficientCreditsError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    StratusError,
    UnprocessableEntityError,
)
from stratus.client._streaming import AsyncStream, Stream
from stratus.client._types import JobStatus, Reply, Status, Usage

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncJob",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "InferenceFailed",
    "InferencePending",
    "InferenceTimeout",
    "InsufficientCreditsError",
    "InternalServerError",
    "Job",
    "JobStatus",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Reply",
    "RequestTooLargeError",
    "Status",
    "StratusError",
    "Stream",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
]
