"""Stratus: a self-hosted serverless LLM API.

``import stratus`` is the SDK (it needs only httpx)::

    import stratus

    reply = stratus.chat("claude-3-haiku", messages=[{"role": "user", "content": "Hi"}])
    print(reply.text)

The server lives in the subpackages (``stratus.api``, ``stratus.store``, ...) and runs with
``stratus serve``.
"""

from stratus.client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    AsyncJob,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    InferenceFailed,
    InferencePending,
    InferenceTimeout,
    InsufficientCreditsError,
    InternalServerError,
    Job,
    JobStatus,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Reply,
    RequestTooLargeError,
    Status,
    StratusError,
    UnprocessableEntityError,
    Usage,
    __version__,
)
from stratus.client._module import chat, chat_sync, default_client, submit_chat

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncJob",
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
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "chat",
    "chat_sync",
    "default_client",
    "submit_chat",
]
