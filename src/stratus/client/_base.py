"""What the sync and async clients share: settings, headers, retry decisions, and turning
responses into results or exceptions. No I/O here."""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from stratus.client._exceptions import (
    STATUS_ERRORS,
    APIStatusError,
    InferenceFailed,
    InferencePending,
    InferenceTimeout,
    InternalServerError,
    StratusError,
)
from stratus.client._types import JobStatus, Reply, Status

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_WAIT = 600.0
MAX_LONG_POLL = 60.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503})
MAX_RETRY_DELAY = 60.0


@dataclass(frozen=True)
class Settings:
    api_key: str
    base_url: str
    timeout: float
    max_retries: int

    @classmethod
    def resolve(cls, api_key: str | None, base_url: str | None, timeout: float,
                max_retries: int) -> Settings:
        api_key = api_key or os.environ.get("STRATUS_API_KEY")
        if not api_key:
            raise StratusError("no API key: pass api_key=... or set STRATUS_API_KEY")
        base_url = base_url or os.environ.get("STRATUS_BASE_URL") or DEFAULT_BASE_URL
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        return cls(api_key=api_key, base_url=base_url.rstrip("/"), timeout=timeout,
                   max_retries=max_retries)

    def headers(self) -> dict[str, str]:
        from stratus.client import __version__

        return {"x-api-key": self.api_key, "user-agent": f"stratus-python/{__version__}"}


def new_idempotency_key() -> str:
    return "stratus-" + uuid.uuid4().hex


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def should_retry(response: httpx.Response) -> bool:
    if response.status_code not in RETRY_STATUSES:
        return False
    body = body_of(response)
    return not (isinstance(body, dict) and body.get("status") == "FAILED")


def retry_delay(attempt: int, response: httpx.Response | None) -> float:
    """Seconds to wait before retry number ``attempt + 1``: the server's ``Retry-After``
    when it gave one, else exponential backoff with jitter."""
    if response is not None:
        after = _retry_after(response.headers.get("retry-after"))
        if after is not None:
            return min(after, MAX_RETRY_DELAY)
    backoff = min(0.5 * 2**attempt, 8.0)
    return backoff * random.uniform(0.5, 1.0)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def error_for(response: httpx.Response) -> StratusError:
    body = body_of(response)
    if isinstance(body, dict) and body.get("request_id"):
        status = body.get("status")
        if status == "FAILED" and response.status_code != 409:
            return InferenceFailed(body["request_id"], body.get("error"),
                                   body.get("error_type") or body.get("type"), body)
        if response.status_code == 504 and status in ("QUEUED", "PROCESSING"):
            return InferenceTimeout(body["request_id"], None, status)
    message = _message(body) or response.reason_phrase or "error"
    cls = STATUS_ERRORS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(message, response=response, body=body)


def _message(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
    if isinstance(body, str):
        return body[:500]
    return None


def reply_from_result(body: dict[str, Any]) -> Reply:
    """``GET /v2/requests/{id}`` of a COMPLETED job: ``output`` is the message as JSON text."""
    import json

    output = body["output"]
    message = json.loads(output) if isinstance(output, str) else output
    return Reply.from_message(message, request_id=body.get("request_id"),
                              metrics=body.get("metrics"))


def result_or_raise(response: httpx.Response) -> Reply:
    body = body_of(response)
    if response.status_code == 200:
        return reply_from_result(body)
    status = JobStatus.from_body(body)
    if status.status is Status.FAILED:
        raise InferenceFailed(status.request_id, status.error, status.error_type, body)
    raise InferencePending(status.request_id, status.status.value)


class Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def next_poll(self) -> float | None:
        """How long the next long-poll may hold, or None once the deadline has passed."""
        if self._end is None:
            return MAX_LONG_POLL
        left = self._end - time.monotonic()
        if left <= 0:
            return None
        return min(left, MAX_LONG_POLL)
