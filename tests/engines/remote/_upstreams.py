"""A real OpenAI-compatible upstream for the remote engine's tests, and a counting proxy.

``LlamaCppUpstream`` runs ``llama_cpp.server`` (through ``bench/_llama_server.py``) on the
packaged gemma-3-270m. What that server does (llama-cpp-python 0.3.x, checked by hand):

- ``POST /v1/chat/completions`` streams ``data: {chunk}`` events (one token each, first chunk
  ``delta: {"role": "assistant"}``), then a chunk with ``delta: {}`` and ``finish_reason``
  (``"length"`` or ``"stop"``), then ``data: [DONE]``. ``stream_options`` is ignored: no usage
  chunk, and no ``usage`` key in any chunk (a non-streamed reply has ``usage``).
- Unknown fields are ignored (``max_completion_tokens`` too); ``stop``, ``seed`` and ``top_k``
  are honoured; without ``max_tokens`` it generates until the context is full. A reply's
  ``model`` echoes the request's ``model`` (any name is served by the one model), else the
  GGUF path. A malformed field is a 500 (not 422) with an OpenAI-style error body.
- A prompt over the context: 400 ``code: "context_length_exceeded"`` when not streamed; when
  streamed, a 200 ``text/event-stream`` that ends cleanly with no event at all (no
  ``[DONE]``). A prompt that fits but leaves less than ``max_tokens`` stops at the context
  with ``finish_reason: "length"``.
- One request generates at a time (a lock), so concurrent streams are serialized: a waiting
  stream gets its 200 headers at once and its events when its turn comes; a waiting stream
  whose client goes away never runs. ``/v1/models`` and the tokenize endpoints wait on the
  same lock. Every stream, waiting or generating, carries a ``: ping - <UTC time>`` comment
  line every 15 s.
- Tokenize: ``POST /extras/tokenize`` ``{"input": str}`` -> ``{"tokens": [int, ...]}``;
  ``POST /extras/tokenize/count`` ``{"input": str}`` -> ``{"count": int}``;
  ``POST /extras/detokenize`` ``{"tokens": [...]}`` -> ``{"text": str}``. The input is raw
  text (no chat template), control tokens parsed, BOS included in the tokens and the count.
- When the client goes away mid-stream it stops generating at its next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from stratus import weights
from tests._asgi import ThreadedServer
from tests._server import free_port

REPO = Path(__file__).resolve().parents[3]
MODEL_NAME = "gemma-3-270m"
CHAT_PATH = "/v1/chat/completions"


class LlamaCppUpstream:
    """``llama_cpp.server`` on gemma-3-270m at ``http://127.0.0.1:PORT``, its log in
    ``directory/llama-server.log``; the weights are assembled into ``data_dir`` (default
    ``directory``)."""

    model_name = MODEL_NAME

    def __init__(self, directory: Path, *, data_dir: Path | None = None, n_ctx: int = 2048,
                 threads: int = 2) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir or directory
        self.n_ctx = n_ctx
        self.threads = threads
        self.port = free_port()
        self.log_path = directory / "llama-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        """The server's root, e.g. for ``CountingProxy(upstream.root)``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL."""
        return self.root + "/v1"

    def start(self, timeout: float = 120.0) -> Self:
        """Starts the server and waits until ``GET /v1/models`` answers 200."""
        model = weights.resolve(f"package:{MODEL_NAME}", self.data_dir, progress=False)
        args = [sys.executable, str(REPO / "bench" / "_llama_server.py"),
                "--model", str(model), "--model_alias", MODEL_NAME,
                "--host", "127.0.0.1", "--port", str(self.port),
                "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
                "--n_threads_batch", str(self.threads), "--chat_format", "gemma",
                "--interrupt_requests", "False"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         env=_server_env(), cwd=self.directory)
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise RuntimeError(f"llama_cpp.server exited with {code} while starting: "
                                       f"see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + "/models").status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"llama_cpp.server did not answer within {timeout:.0f} s: "
                                       f"see {self.log_path}")
                time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as an upstream that dies mid-stream."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self, timeout: float = 120.0) -> Self:
        """Stops the server if it runs, and starts it again on the same port."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _server_env() -> dict[str, str]:
    """The environment without variables that ``llama_cpp.server``'s settings would read."""
    from llama_cpp.server.settings import Settings

    names = {name.lower() for name in Settings.model_fields} | {"config_file"}
    return {k: v for k, v in os.environ.items() if k.lower() not in names}


# -- the proxy -------------------------------------------------------------------------------

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def _error_body(status: int) -> dict[str, Any]:
    """An OpenAI-style error body for an injected failure."""
    if status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    return {"error": {"message": f"injected failure: HTTP {status}", "type": kind,
                      "param": None, "code": code}}


class CountingProxy:
    """A reverse proxy to ``upstream`` (a root such as ``http://127.0.0.1:PORT``) on a free
    127.0.0.1 port, served by uvicorn in a thread of its own.

    Every request is forwarded as is and its response streamed back chunk by chunk; a client
    that goes away closes the upstream response at once; an unreachable upstream is a 502
    with a JSON error. ``POST /v1/chat/completions`` requests are counted: ``requests`` (their
    JSON bodies, in order), ``inflight`` / ``max_inflight`` (from arrival until the response
    is sent or the client went away), ``rejected`` (answered by ``fail_next``) and
    ``client_disconnects`` (clients that went away before the end of the response).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._failures: deque[_Failure] = deque()
        self._inflight = 0
        self._max_inflight = 0
        self._rejected = 0
        self._disconnects = 0
        self._client: httpx.AsyncClient | None = None
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=methods)],
                        lifespan=self._lifespan)
        self._serving = ThreadedServer(app, "counting-proxy", lifespan=True)

    @property
    def url(self) -> str:
        """The proxy's root: an OpenAI client uses ``proxy.url + "/v1"``."""
        return self._serving.url

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def inflight(self) -> int:
        with self._lock:
            return self._inflight

    @property
    def max_inflight(self) -> int:
        with self._lock:
            return self._max_inflight

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the chat-completion bodies received, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def rejected(self) -> int:
        with self._lock:
            return self._rejected

    @property
    def client_disconnects(self) -> int:
        with self._lock:
            return self._disconnects

    def fail_next(self, n: int, status: int = 429, headers: dict[str, str] | None = None,
                  body: dict[str, Any] | None = None) -> None:
        """Answers the next ``n`` chat completions with ``status`` without the upstream."""
        failure = _Failure(status, dict(headers or {}), body or _error_body(status))
        with self._lock:
            self._failures.extend([failure] * n)

    def reset(self) -> None:
        """Clears the records, the counters (``inflight`` is live, kept) and pending failures."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._max_inflight = self._inflight
            self._rejected = 0
            self._disconnects = 0

    def start(self, timeout: float = 10.0) -> Self:
        self._serving.start(timeout)
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside the proxy's event loop --

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        timeout = httpx.Timeout(connect=10.0, read=None, write=60.0, pool=None)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        async with httpx.AsyncClient(base_url=self.upstream, timeout=timeout, limits=limits,
                                     trust_env=False) as client:
            self._client = client
            yield

    def _arrived(self, body: bytes) -> _Failure | None:
        try:
            record = json.loads(body)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            record = {"_raw": body.decode("utf-8", "replace")}
        with self._lock:
            self._requests.append(record)
            self._inflight += 1
            self._max_inflight = max(self._max_inflight, self._inflight)
            failure = self._failures.popleft() if self._failures else None
            if failure is not None:
                self._rejected += 1
            return failure

    def _finished(self, disconnected: bool) -> None:
        with self._lock:
            self._inflight -= 1
            self._disconnects += disconnected

    async def _forward(self, request: Request) -> Response:
        assert self._client is not None
        body = await request.body()
        counted = request.method == "POST" and request.url.path == CHAT_PATH
        failure = self._arrived(body) if counted else None
        on_done: Callable[[bool], None] | None = self._finished if counted else None
        if failure is not None:
            return _Counted(JSONResponse(failure.body, failure.status, failure.headers), on_done)
        headers = [(k, v) for k, v in request.headers.items()
                   if k not in _HOP_BY_HOP and k not in ("host", "content-length")]
        try:
            upstream_request = self._client.build_request(
                request.method, request.url.path, params=request.url.query, headers=headers,
                content=body)
            upstream = await self._client.send(upstream_request, stream=True)
        except httpx.TransportError as exc:
            error = {"error": {"message": f"upstream {self.upstream} unreachable: {exc!r}",
                               "type": "upstream_error", "param": None, "code": "bad_gateway"}}
            return _Counted(JSONResponse(error, 502), on_done)
        except BaseException:
            if on_done is not None:
                on_done(False)
            raise
        return _Relay(upstream, on_done)


class _Once:
    """Calls ``on_done`` once: just before the last body message is sent (so a client that has
    read the whole response sees the request counted out), or at the end if that never came."""

    def __init__(self, on_done: Callable[[bool], None] | None) -> None:
        self.on_done = on_done

    def __call__(self, disconnected: bool) -> None:
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done(disconnected)

    def wrap(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self(False)
            await send(message)

        return wrapped


class _Counted(Response):
    """A response of the proxy's own, counted out when sent."""

    def __init__(self, inner: Response, on_done: Callable[[bool], None] | None) -> None:
        self.inner = inner
        self.done = _Once(on_done)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, self.done.wrap(send))
        finally:
            self.done(False)


class _Relay(Response):
    """Streams an upstream response through as its bytes arrive, and closes it as soon as the
    client goes away. An upstream that breaks mid-body breaks the client's connection too."""

    def __init__(self, upstream: httpx.Response,
                 on_done: Callable[[bool], None] | None) -> None:
        self.upstream = upstream
        self.done = _Once(on_done)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relay = asyncio.ensure_future(self._relay(self.done.wrap(send)))
        watch = asyncio.ensure_future(_disconnected(receive))
        disconnected = False
        try:
            await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
            # a client that saw the whole response did not go away, whichever task ended first
            disconnected = not relay.done() and self.done.on_done is not None
        finally:
            for task in (relay, watch):
                task.cancel()
            await asyncio.gather(relay, watch, return_exceptions=True)
            await self.upstream.aclose()
            self.done(disconnected)
        if not disconnected:
            relay.result()  # an upstream broken mid-body: uvicorn drops the connection

    async def _relay(self, send: Send) -> None:
        headers = [(k.lower(), v) for k, v in self.upstream.headers.raw
                   if k.decode("latin-1").lower() not in _HOP_BY_HOP]
        await send({"type": "http.response.start", "status": self.upstream.status_code,
                    "headers": headers})
        async for chunk in self.upstream.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass
