"""``stratus.chat(...)`` and friends: module-level calls on a default client built from
``STRATUS_API_KEY`` and ``STRATUS_BASE_URL``."""

from __future__ import annotations

import threading
from typing import Any

from stratus.client._base import DEFAULT_WAIT
from stratus.client._client import Client, Job
from stratus.client._streaming import Stream
from stratus.client._types import Reply

_lock = threading.Lock()
_default: Client | None = None


def default_client() -> Client:
    global _default
    with _lock:
        if _default is None:
            _default = Client()
        return _default


def chat(model: str, *, timeout: float | None = DEFAULT_WAIT, **payload: Any) -> Reply:
    """Submit to the queue (v2) and block until the reply."""
    return default_client().chat(model, timeout=timeout, **payload)


def submit_chat(model: str, **payload: Any) -> Job:
    """Submit to the queue (v2); returns a :class:`Job` with its ``request_id`` at once."""
    return default_client().submit_chat(model, **payload)


def stream(model: str, **payload: Any) -> Stream:
    """A streamed sync call: iterate for text deltas, then ``.reply``."""
    return default_client().stream(model, **payload)


def chat_sync(model: str, **payload: Any) -> Reply:
    """One sync call (v1)."""
    return default_client().chat_sync(model, **payload)
