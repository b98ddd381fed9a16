"""What every upstream engine shares: one connection pool, the key from the environment, how an
upstream's answer is judged (go on, hand the job back, or fail it), and the cooldown.

The rules (the same for every upstream):

- Before the first text, a 429, a 5xx (529 included), a timeout or a connection error hands
  the job back to the queue (:class:`~stratus.engines.EngineBusy`, honouring
  ``Retry-After``); a plain 500, which may be the request's own doing, at most twice for one
  job. A 400, 404, 413 or 422 fails the job as an invalid request (the client's to fix); any
  other 4xx fails it as the engine's error. After the first text nothing is retried: the job
  fails with the upstream's error.
- ``cooldown_after`` failures of the upstream itself in a row (408, 502, 503, 504, 529, a
  timeout, a connection error, a stream cut short) put it in cooldown: it takes no job (its
  jobs wait QUEUED) while a probe asks it every ``cooldown`` seconds, doubling up to
  ``max_cooldown``, whether it answers again. When it does, jobs flow again; one more failure
  before a success starts the next, longer cooldown. What a client sees of the reason (the
  model list, ``/ready``) is a summary without addresses or the upstream's words; the log
  has the whole of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from stratus.engines._options import RemoteOptions
from stratus.engines._types import EngineBusy, EngineHealth, RequestRejected
from stratus.errors import describe

log = logging.getLogger("stratus.engines.remote")

DEFAULT_RETRY = 1.0  # seconds before another try when the upstream does not say
MAX_RETRY_AFTER = 600.0
MAX_ERROR_CHARS = 500  # of an upstream's error message kept in ours
SMALL_CONNECTIONS = 4  # for counting tokens and probing, beside the streams


UPSTREAM_DOWN = (408, 502, 503, 504, 529)  # statuses that say the upstream, not the request
INVALID = (400, 404, 413, 422)  # statuses that say the request is at fault
ONE_REQUEST_TRIES = 2  # hand-backs of one job for an error that may be its own (a 500)


class UpstreamError(Exception):
    """The upstream refused or broke the request: the job fails with this message."""


class Refused(Exception):
    """An upstream answer that hands the job back (before any text): ``retry_after`` seconds
    (None: the upstream did not say); ``failure``: the upstream itself failed (it counts
    towards a cooldown); ``summary``: what may be shown to anyone; ``tries``: at most this
    many hand-backs of one job (None: the worker's bound)."""

    def __init__(self, message: str, retry_after: float | None, *, failure: bool,
                 summary: str, tries: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.failure = failure
        self.summary = summary
        self.tries = tries


def retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` (seconds or an HTTP date), bounded; None when absent or unreadable."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def error_message(body: bytes) -> str:
    """The message inside an upstream's error body (OpenAI's and Anthropic's shapes), else
    the start of the body."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:MAX_ERROR_CHARS] or "no message"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:MAX_ERROR_CHARS]
    if isinstance(error, str):
        return error[:MAX_ERROR_CHARS]
    return text[:MAX_ERROR_CHARS]


class Cooldown:
    """Failures in a row; past ``after`` the upstream is left alone while ``probe`` checks,
    with a growing period, whether it answers again."""

    def __init__(self, options: RemoteOptions, name: str,
                 probe: Callable[[], Awaitable[None]]) -> None:
        self._after = options.cooldown_after
        self._first = options.cooldown
        self._longest = max(options.max_cooldown, options.cooldown)
        self._name = name
        self._probe = probe
        self._failures = 0
        self._period = self._first
        self._until: float | None = None  # epoch seconds of the next probe while cooling
        self._reason: str | None = None  # the failure that started the cooldown
        self._probe_error: str | None = None  # what the last probe met
        self._task: asyncio.Task[None] | None = None

    @property
    def cooling(self) -> bool:
        return self._until is not None

    def health(self) -> EngineHealth:
        if self._until is None:
            return EngineHealth()
        reason = self._reason if self._probe_error is None \
            else f"{self._reason}; the last probe: {self._probe_error}"
        return EngineHealth(state="cooldown", reason=reason, until=self._until)

    def success(self) -> None:
        if self._until is None:  # a stream begun before the cooldown changes nothing
            self._failures = 0
            self._period = self._first

    def failure(self, summary: str, detail: str) -> None:
        self._failures += 1
        if self._until is None and self._failures >= self._after:
            self._open(summary, detail)

    def _open(self, summary: str, detail: str) -> None:
        self._reason = summary
        self._until = time.time() + self._period
        log.warning("upstream of %s cooling down for %g s: %s", self._name, self._period, detail)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._probing(), name=f"probe-{self._name}")

    async def _probing(self) -> None:
        while self._until is not None:
            await asyncio.sleep(max(self._until - time.time(), 0.0))
            self._period = min(self._period * 2, self._longest)
            self._until = time.time() + self._period  # the next probe, if this one fails
            try:
                await self._probe()
            except Exception as exc:  # still down
                self._probe_error = type(exc).__name__ if not isinstance(exc, UpstreamError) \
                    else str(exc)
                log.warning("upstream of %s still down: %s", self._name, describe(exc))
                continue
            log.warning("upstream of %s answers again", self._name)
            self._until = self._reason = self._probe_error = None
            self._failures = self._after - 1  # one more failure before a success: cool again

    async def close(self) -> None:
        self._until = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Upstream:
    """One upstream: its HTTP client (one pool), key, in-flight count and cooldown."""

    def __init__(self, options: RemoteOptions, name: str, probe_path: str) -> None:
        self.options = options
        self.name = name
        self.base = options.base_url.rstrip("/")
        self._probe_path = probe_path
        self._client: httpx.AsyncClient | None = None
        self._small: httpx.AsyncClient | None = None  # counting and probing: short timeouts
        self.key: str | None = None
        self.cooldown = Cooldown(options, name, self.probe)

    def start(self, generate: bool = True) -> None:
        """Open the pool; read the key. A key variable that is not set is an error now for a
        process that generates (an API node only counts: without the key, it estimates)."""
        env = self.options.api_key_env
        if env is not None:
            self.key = os.environ.get(env) or None
            if self.key is None and generate:
                raise UpstreamError(
                    f"model {self.name!r}: the environment variable {env} (api_key_env) "
                    "holding the upstream's API key is not set")
        concurrency = self.options.max_concurrency
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=self.options.connect_timeout,
                                  read=self.options.read_timeout, write=60.0,
                                  pool=self.options.connect_timeout),
            limits=httpx.Limits(max_connections=concurrency + 2,  # and a probe
                                max_keepalive_connections=concurrency + 2),
            follow_redirects=False)
        self._small = httpx.AsyncClient(
            timeout=self.options.connect_timeout, follow_redirects=False,
            limits=httpx.Limits(max_connections=SMALL_CONNECTIONS,
                                max_keepalive_connections=SMALL_CONNECTIONS))

    async def close(self) -> None:
        await self.cooldown.close()
        for client in (self._client, self._small):
            if client is not None:
                await client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise UpstreamError(f"model {self.name!r}: the engine is not started")
        return self._client

    @property
    def small(self) -> httpx.AsyncClient:
        if self._small is None:
            raise UpstreamError(f"model {self.name!r}: the engine is not started")
        return self._small

    def capacity(self) -> int:
        return 0 if self.cooldown.cooling else self.options.max_concurrency

    async def probe(self) -> None:
        """Raises unless the upstream answers (any status but 429 and 5xx)."""
        response = await self.small.get(self.base + self._probe_path, headers=self.headers())
        if response.status_code == 429 or response.status_code >= 500:
            raise UpstreamError(f"HTTP {response.status_code}")

    def headers(self) -> dict[str, str]:  # overridden per upstream kind
        return {}

    async def post_json(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """A small POST (counting tokens): its JSON answer, or ``UpstreamError``."""
        response = await self.small.post(url, headers=self.headers(), json=body)
        if response.status_code != 200:
            raise UpstreamError(f"HTTP {response.status_code}: "
                                f"{error_message(response.content)}")
        data = response.json()
        if not isinstance(data, dict):
            raise UpstreamError(f"an answer that is not a JSON object: {response.text[:200]}")
        return data

    @contextlib.asynccontextmanager
    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST ``body`` and hold the streamed response open (closing it closes the upstream
        stream: that is how a job is cancelled). Raises :class:`Refused` or
        :class:`UpstreamError` for an answer that is not a 200."""
        request = self.client.build_request("POST", self.base + path, json=body,
                                            headers=self.headers())
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            log.warning("model %s: cannot reach the upstream at %s: %s", self.name, self.base,
                        describe(exc))
            raise Refused(f"cannot reach the upstream: {describe(exc)}", None, failure=True,
                          summary="the upstream cannot be reached") from None
        try:
            if response.status_code != 200:
                raise await self._refusal(response)
            yield response
        finally:
            await response.aclose()

    async def _refusal(self, response: httpx.Response) -> Exception:
        status = response.status_code
        try:
            body = await response.aread()
        except httpx.HTTPError:
            body = b""
        message = f"the upstream answered HTTP {status}: {error_message(body)}"
        wait = retry_after(response.headers)
        if status == 429:
            return Refused(message, wait, failure=False,
                           summary="the upstream is rate limiting (HTTP 429)")
        if status in UPSTREAM_DOWN:
            return Refused(message, wait, failure=True,
                           summary=f"the upstream answered HTTP {status}")
        if status >= 500:
            return Refused(message, wait, failure=False, tries=ONE_REQUEST_TRIES,
                           summary=f"the upstream answered HTTP {status}")
        if status in INVALID:
            return RequestRejected(f"the upstream refused the request: {message}")
        if status in (401, 403):
            env = self.options.api_key_env
            return UpstreamError(f"{message} (check the key in {env})" if env else message)
        return UpstreamError(message)

    def busy(self, refused: Refused) -> EngineBusy:
        """The job goes back to the queue; a failure counts towards a cooldown."""
        if refused.failure:
            self.cooldown.failure(refused.summary, f"{refused} ({self.base})")
        wait = refused.retry_after
        health = self.cooldown.health()
        if health.until is not None:
            wait = max(wait or 0.0, health.until - time.time())
        return EngineBusy(str(refused), DEFAULT_RETRY if wait is None else wait,
                          tries=refused.tries)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as (event name, data); the name is "message" when not given."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    if data:
        yield event, "\n".join(data)
