"""The synchronous client and its job handle."""

from __future__ import annotations

import time
from typing import Any

import httpx

from stratus.client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT,
    Deadline,
    Settings,
    body_of,
    error_for,
    new_idempotency_key,
    result_or_raise,
    retry_delay,
    should_retry,
)
from stratus.client._exceptions import (
    APIConnectionError,
    APITimeoutError,
    InferenceFailed,
    InferenceTimeout,
)
from stratus.client._streaming import Stream
from stratus.client._types import JobStatus, Reply, Status


class Client:
    """``Client(api_key=None, base_url=None, timeout=60, max_retries=2)``.

    ``api_key`` defaults to ``STRATUS_API_KEY``, ``base_url`` to ``STRATUS_BASE_URL`` (else
    ``http://127.0.0.1:8000``). Failed calls (429, 5xx, connection errors) are retried with
    backoff, honouring ``Retry-After``; submits carry an ``Idempotency-Key`` so a retried
    submit never runs twice.
    """

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
                 http_client: httpx.Client | None = None) -> None:
        self._settings = Settings.resolve(api_key, base_url, timeout, max_retries)
        self._http = http_client or httpx.Client(timeout=timeout)

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                ok: frozenset[int] = frozenset(), timeout: float | None = None,
                stream: bool = False) -> httpx.Response:
        """One API call with retries; returns the response if 2xx or in ``ok``. With
        ``stream``, the body is left unread for the caller to iterate (and close)."""
        url = self._settings.base_url + path
        all_headers = {**self._settings.headers(), **(headers or {})}
        attempt = 0
        while True:
            try:
                request = self._http.build_request(method, url, json=json, params=params,
                                                   headers=all_headers,
                                                   timeout=timeout or self._settings.timeout)
                response = self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                failure: Exception = APITimeoutError(f"{method} {path}: {exc}")
                response = None
            except httpx.TransportError as exc:
                failure = APIConnectionError(f"{method} {path}: {exc}")
                response = None
            else:
                if response.is_success or response.status_code in ok:
                    return response
                if stream:
                    response.read()
                    response.close()
                failure = error_for(response)
                if not should_retry(response):
                    raise failure
            if attempt >= self._settings.max_retries:
                raise failure
            time.sleep(retry_delay(attempt, response))
            attempt += 1

    # -- chat --------------------------------------------------------------------------------

    def submit_chat(self, model: str, **payload: Any) -> Job:
        """Queue a request (``POST /v2/{model}``); the returned job has its ``request_id``."""
        response = self.request("POST", f"/v2/{model}", json=payload,
                                headers={"Idempotency-Key": new_idempotency_key()})
        body = body_of(response)
        return Job(self, body["request_id"], submitted=body)

    def chat(self, model: str, *, timeout: float | None = DEFAULT_WAIT,
             **payload: Any) -> Reply:
        """Submit to the queue and block until the reply (or ``timeout`` seconds)."""
        return self.submit_chat(model, **payload).wait(timeout=timeout)

    def chat_sync(self, model: str, **payload: Any) -> Reply:
        """One sync call (``POST /v1/{model}``)."""
        response = self.request("POST", f"/v1/{model}", json=payload,
                                headers={"Idempotency-Key": new_idempotency_key()},
                                timeout=max(self._settings.timeout, 330.0))
        return Reply.from_message(body_of(response),
                                  request_id=response.headers.get("x-request-id"))

    def stream(self, model: str, **payload: Any) -> Stream:
        """A sync call that streams (``POST /v1/{model}`` with ``stream``): iterate for text
        deltas; ``.reply`` (or ``until_done()``) is the whole reply."""
        response = self.request("POST", f"/v1/{model}", json={**payload, "stream": True},
                                headers={"Idempotency-Key": new_idempotency_key()},
                                stream=True)
        return Stream(response.iter_lines(), response.headers.get("x-request-id"),
                      response.close)

    def job(self, request_id: str) -> Job:
        """A handle on a request submitted earlier."""
        return Job(self, request_id)

    def models(self) -> list[dict[str, Any]]:
        return body_of(self.request("GET", "/v1/models"))["data"]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Job:
    """A queued request. ``wait()`` long-polls, so it returns as soon as the job ends."""

    def __init__(self, client: Client, request_id: str,
                 submitted: dict[str, Any] | None = None) -> None:
        self._client = client
        self.request_id = request_id
        self.submitted = submitted or {}

    def __repr__(self) -> str:
        return f"Job(request_id={self.request_id!r})"

    def status(self, wait: float = 0) -> JobStatus:
        """The job's status; with ``wait``, hold up to that many seconds for it to change."""
        params = {"wait": f"{wait:g}"} if wait else None
        response = self._client.request(
            "GET", f"/v2/requests/{self.request_id}/status", params=params,
            ok=frozenset({422}), timeout=wait + self._client._settings.timeout)
        return JobStatus.from_body(body_of(response))

    def wait(self, timeout: float | None = DEFAULT_WAIT) -> Reply:
        """Block until the job ends. Raises ``InferenceFailed`` if it FAILED and
        ``InferenceTimeout`` if ``timeout`` seconds pass first."""
        deadline = Deadline(timeout)
        state = self.status()
        while not state.status.is_terminal():
            hold = deadline.next_poll()
            if hold is None:
                raise InferenceTimeout(self.request_id, timeout, state.status.value)
            state = self.status(wait=hold)
        if state.status is Status.FAILED:
            raise InferenceFailed(self.request_id, state.error, state.error_type, state.raw)
        return self.result()

    def result(self) -> Reply:
        """The reply of a COMPLETED job; ``InferenceFailed`` or ``InferencePending`` else."""
        response = self._client.request("GET", f"/v2/requests/{self.request_id}",
                                        ok=frozenset({202, 422}))
        return result_or_raise(response)

    def cancel(self) -> JobStatus:
        response = self._client.request("POST", f"/v2/requests/{self.request_id}/cancel")
        return JobStatus.from_body(body_of(response))

    def stream(self) -> Stream:
        """Follow the job: its text as it is made (all of it, whenever this is called)."""
        response = self._client.request("GET", f"/v2/requests/{self.request_id}/stream",
                                        stream=True)
        return Stream(response.iter_lines(), self.request_id, response.close)
