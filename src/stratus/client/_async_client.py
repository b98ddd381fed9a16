"""The asynchronous client and its job handle: the twins of :mod:`._client`."""

from __future__ import annotations

import asyncio
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
from stratus.client._streaming import AsyncStream
from stratus.client._types import JobStatus, Reply, Status


class AsyncClient:
    """The async twin of :class:`stratus.Client`; same arguments, same behaviour."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self._settings = Settings.resolve(api_key, base_url, timeout, max_retries)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None, ok: frozenset[int] = frozenset(),
                      timeout: float | None = None, stream: bool = False) -> httpx.Response:
        url = self._settings.base_url + path
        all_headers = {**self._settings.headers(), **(headers or {})}
        attempt = 0
        while True:
            try:
                request = self._http.build_request(method, url, json=json, params=params,
                                                   headers=all_headers,
                                                   timeout=timeout or self._settings.timeout)
                response = await self._http.send(request, stream=stream)
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
                    await response.aread()
                    await response.aclose()
                failure = error_for(response)
                if not should_retry(response):
                    raise failure
            if attempt >= self._settings.max_retries:
                raise failure
            await asyncio.sleep(retry_delay(attempt, response))
            attempt += 1

    async def submit_chat(self, model: str, **payload: Any) -> AsyncJob:
        response = await self.request("POST", f"/v2/{model}", json=payload,
                                      headers={"Idempotency-Key": new_idempotency_key()})
        body = body_of(response)
        return AsyncJob(self, body["request_id"], submitted=body)

    async def chat(self, model: str, *, timeout: float | None = DEFAULT_WAIT,
                   **payload: Any) -> Reply:
        job = await self.submit_chat(model, **payload)
        return await job.wait(timeout=timeout)

    async def chat_sync(self, model: str, **payload: Any) -> Reply:
        response = await self.request("POST", f"/v1/{model}", json=payload,
                                      headers={"Idempotency-Key": new_idempotency_key()},
                                      timeout=max(self._settings.timeout, 330.0))
        return Reply.from_message(body_of(response),
                                  request_id=response.headers.get("x-request-id"))

    async def stream(self, model: str, **payload: Any) -> AsyncStream:
        response = await self.request("POST", f"/v1/{model}",
                                      json={**payload, "stream": True},
                                      headers={"Idempotency-Key": new_idempotency_key()},
                                      stream=True)
        return AsyncStream(response.aiter_lines(), response.headers.get("x-request-id"),
                           response.aclose)

    def job(self, request_id: str) -> AsyncJob:
        return AsyncJob(self, request_id)

    async def models(self) -> list[dict[str, Any]]:
        return body_of(await self.request("GET", "/v1/models"))["data"]

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncJob:
    """The async twin of :class:`stratus.Job`."""

    def __init__(self, client: AsyncClient, request_id: str,
                 submitted: dict[str, Any] | None = None) -> None:
        self._client = client
        self.request_id = request_id
        self.submitted = submitted or {}

    def __repr__(self) -> str:
        return f"AsyncJob(request_id={self.request_id!r})"

    async def status(self, wait: float = 0) -> JobStatus:
        params = {"wait": f"{wait:g}"} if wait else None
        response = await self._client.request(
            "GET", f"/v2/requests/{self.request_id}/status", params=params,
            ok=frozenset({422}), timeout=wait + self._client._settings.timeout)
        return JobStatus.from_body(body_of(response))

    async def wait(self, timeout: float | None = DEFAULT_WAIT) -> Reply:
        deadline = Deadline(timeout)
        state = await self.status()
        while not state.status.is_terminal():
            hold = deadline.next_poll()
            if hold is None:
                raise InferenceTimeout(self.request_id, timeout, state.status.value)
            state = await self.status(wait=hold)
        if state.status is Status.FAILED:
            raise InferenceFailed(self.request_id, state.error, state.error_type, state.raw)
        return await self.result()

    async def result(self) -> Reply:
        response = await self._client.request("GET", f"/v2/requests/{self.request_id}",
                                              ok=frozenset({202, 422}))
        return result_or_raise(response)

    async def cancel(self) -> JobStatus:
        response = await self._client.request("POST",
                                              f"/v2/requests/{self.request_id}/cancel")
        return JobStatus.from_body(body_of(response))

    async def stream(self) -> AsyncStream:
        response = await self._client.request(
            "GET", f"/v2/requests/{self.request_id}/stream", stream=True)
        return AsyncStream(response.aiter_lines(), self.request_id, response.aclose)
