"""A local stand-in for Anthropic's Messages API, for tests that cannot reach the internet.

``FakeAnthropic`` serves ``POST /v1/messages`` (streamed with server-sent events, or whole),
``POST /v1/messages/count_tokens`` and ``GET /v1/models`` on a free 127.0.0.1 port, from a
uvicorn server in a background thread with its own event loop. It answers in the shapes the
real API uses, so the official ``anthropic`` SDK parses everything it sends:

* streams: ``message_start`` (a full message with empty ``content``), then per content block
  ``content_block_start`` / ``content_block_delta`` (``text_delta`` or ``input_json_delta``)
  / ``content_block_stop``, a ``ping`` after the first ``content_block_start`` (after
  ``message_start`` when there is no block), ``message_delta`` and ``message_stop``;
* errors: ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``,
  or mid-stream ``event: error`` with ``{"type": "error", "error": {...}}``;
* every response carries a ``request-id`` header (``req_...``).

What each ``/v1/messages`` call does is scripted with ``FakeAnthropic.script``: a ``Reply``,
a ``Fail``, an ``ErrorAfter`` or a ``Hang``; with nothing scripted it is ``Reply()``, an
echo of the last user message. A token is a whitespace-separated word (an image or a
document counts as one), as in Stratus's echo engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeAlias

from tests._asgi import ThreadedServer

Scope: TypeAlias = MutableMapping[str, Any]
AsgiMessage: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[AsgiMessage]]
Send: TypeAlias = Callable[[AsgiMessage], Awaitable[None]]

TOOL_USE_TOKENS = 5  # output tokens a tool_use block costs, beside the words of the text
POLL = 0.05  # seconds between checks for a stopping server while a response waits

MODELS: tuple[tuple[str, str, str], ...] = (  # id, display name, created at
    ("claude-opus-5-5", "Claude Opus 5.5", "2026-09-15T00:00:00Z"),
    ("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-15T00:00:00Z"),
    ("claude-haiku-5-5", "Claude Haiku 5.5", "2026-09-15T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
)

DEFAULT_MESSAGES = {  # error type → the message the real API tends to send with it
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
    "timeout_error": "Request timed out",
}

ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                "rate_limit_error": 429, "api_error": 500, "timeout_error": 504,
                "overloaded_error": 529}

# Top-level fields of a Messages request the fake accepts; others are rejected as the real
# API rejects them ("Extra inputs are not permitted").
REQUEST_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "stream", "temperature", "top_p", "top_k",
    "stop_sequences", "metadata", "tools", "tool_choice", "thinking", "service_tier",
    "output_config",
})
COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking",
                          "output_config"})
BLOCK_TYPES = frozenset({
    "text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
})
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})

_ALPHABET = string.ascii_letters + string.digits


def _ident(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


# ----------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class ToolUse:
    """A ``tool_use`` content block of a ``Reply``; ``id`` defaults to a fresh ``toolu_...``."""

    name: str
    input: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """200 with a message: ``text`` (None: the last user message's text), then ``tool_uses``.

    The text goes out as one ``text_delta`` per word (spaces kept), each ``delay`` seconds
    after the event before it; a tool's input as 2+ ``input_json_delta`` pieces. The
    request's ``max_tokens`` and ``stop_sequences`` apply (a cut reply has no tool uses).
    ``stop_reason`` defaults to ``"tool_use"`` with tool uses, else ``"end_turn"``;
    ``input_tokens`` to the words of the system prompt and of every message.
    """

    text: str | None = None
    tool_uses: tuple[ToolUse, ...] = ()
    stop_reason: str | None = None
    input_tokens: int | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Fail:
    """An HTTP error in Anthropic's shape, e.g. ``Fail(529, "overloaded_error")``.

    ``message`` None: the usual message of ``error_type``. ``retry_after`` (seconds) is sent
    as the ``retry-after`` header.
    """

    status: int
    error_type: str
    message: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class ErrorAfter:
    """200, ``message_start``, a text block with the words of ``text``, then ``event: error``.

    The stream ends there: no ``content_block_stop``, ``message_delta`` or ``message_stop``.
    """

    text: str = "partial answer"
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass(frozen=True)
class Hang:
    """200 and ``message_start``, then nothing until the client goes away (or ``stop()``).

    Without ``"stream": true``: no response at all, until then.
    """


Step: TypeAlias = Reply | Fail | ErrorAfter | Hang


@dataclass(frozen=True)
class Recorded:
    """A request as the fake received it. ``headers`` have lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    at: float = field(default_factory=time.monotonic, compare=False)


class _Invalid(Exception):
    """A request the real API would refuse with 400 ``invalid_request_error``."""


# ----------------------------------------------------------------------------- text rules


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str) -> list[str]:
    """``text`` cut into words, each with the whitespace before it; they join back to it."""
    pieces = re.findall(r"\s*\S+", text)
    rest = text[sum(len(p) for p in pieces):]
    if rest:
        if pieces:
            pieces[-1] += rest
        else:
            pieces = [rest]
    return pieces


def _json_pieces(document: str) -> list[str]:
    """The partial_json pieces of a tool's input: an empty one first, as the real API sends,
    then at least two (one when the document is one character)."""
    size = max(1, -(-len(document) // 3))
    chunks = [document[i:i + size] for i in range(0, len(document), size)]
    if len(chunks) == 1 and len(document) > 1:
        chunks = [document[:1], document[1:]]
    return ["", *chunks]


def _block_tokens(block: Any) -> int:
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        return _words(str(block.get("text", "")))
    if kind in ("image", "document"):
        return 1
    if kind == "tool_use":
        return _words(json.dumps(block.get("input", {})))
    if kind == "tool_result":
        return _content_tokens(block.get("content", ""))
    return 0


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _words(content)
    if isinstance(content, list):
        return sum(_block_tokens(block) for block in content)
    return 0


def input_tokens(body: dict[str, Any]) -> int:
    """The words of the system prompt and of every message (an image or document: one)."""
    return _content_tokens(body.get("system", "")) + sum(
        _content_tokens(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    blocks = [b for b in content if isinstance(b, dict)]
    text = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
    if text:
        return "".join(text)
    # A turn of tool results only: echo what the tools said.
    return "".join(_text_of(b.get("content", "")) for b in blocks if b.get("type") == "tool_result")


def echo_text(body: dict[str, Any]) -> str:
    """The text of the last user message: its string content, or its text blocks joined."""
    for message in reversed(body.get("messages", [])):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


@dataclass
class _Plan:
    """What a ``Reply`` sends for one request."""

    pieces: list[str]
    tool_uses: list[dict[str, Any]]  # complete tool_use blocks
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int


def _plan(reply: Reply, body: dict[str, Any]) -> _Plan:
    text = echo_text(body) if reply.text is None else reply.text
    budget = int(body["max_tokens"])
    pieces = _pieces(text)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    found = [(text.find(s), s) for s in body.get("stop_sequences") or [] if s and s in text]
    if found:
        at, sequence = min(found, key=lambda f: (f[0], -len(f[1])))
        if len(_pieces(text[:at + len(sequence)])) <= budget:
            pieces = _pieces(text[:at])
            stop_reason, stop_sequence = "stop_sequence", sequence
    if stop_reason is None and len(pieces) > budget:
        pieces = pieces[:budget]
        stop_reason = "max_tokens"
    tool_uses: list[dict[str, Any]] = []
    if stop_reason is None:
        tool_uses = [{"type": "tool_use", "id": t.id or _ident("toolu_01", 22), "name": t.name,
                      "input": t.input} for t in reply.tool_uses]
        stop_reason = reply.stop_reason or ("tool_use" if tool_uses else "end_turn")
    return _Plan(
        pieces=pieces, tool_uses=tool_uses, stop_reason=stop_reason, stop_sequence=stop_sequence,
        input_tokens=input_tokens(body) if reply.input_tokens is None else reply.input_tokens,
        output_tokens=len(pieces) + TOOL_USE_TOKENS * len(tool_uses))


# ----------------------------------------------------------------------------- validation


def _check_content(where: str, content: Any, *, nested: bool = False) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _Invalid(f"{where}: Input should be a valid string or list of content blocks")
    for i, block in enumerate(content):
        at = f"{where}.{i}"
        if not isinstance(block, dict):
            raise _Invalid(f"{at}: Input should be a valid dictionary")
        kind = block.get("type")
        if kind not in BLOCK_TYPES or (nested and kind not in ("text", "image", "document")):
            raise _Invalid(f"{at}: Input tag '{kind}' found using 'type' does not match any of "
                           "the expected tags")
        if kind == "text" and not isinstance(block.get("text"), str):
            raise _Invalid(f"{at}.text: Field required")
        elif kind == "image":
            _check_image(at, block.get("source"))
        elif kind == "tool_use":
            for name, typ in (("id", str), ("name", str), ("input", dict)):
                if not isinstance(block.get(name), typ):
                    raise _Invalid(f"{at}.tool_use.{name}: Field required")
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise _Invalid(f"{at}.tool_result.tool_use_id: Field required")
            _check_content(f"{at}.tool_result.content", block.get("content", ""), nested=True)


def _check_image(at: str, source: Any) -> None:
    if not isinstance(source, dict):
        raise _Invalid(f"{at}.image.source: Field required")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in IMAGE_MEDIA_TYPES:
            raise _Invalid(f"{at}.image.source.base64.media_type: Input should be "
                           "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
        if not isinstance(source.get("data"), str):
            raise _Invalid(f"{at}.image.source.base64.data: Field required")
    elif kind == "url":
        if not isinstance(source.get("url"), str):
            raise _Invalid(f"{at}.image.source.url.url: Field required")
    else:
        raise _Invalid(f"{at}.image.source: Input tag '{kind}' found using 'type' does not "
                       "match any of the expected tags: 'base64', 'url'")


def _check_number(body: dict[str, Any], name: str, low: float, high: float | None) -> None:
    if name not in body:
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{name}: Input should be a valid number")
    if value < low or (high is not None and value > high):
        raise _Invalid(f"{name}: range: {low}..{high if high is not None else ''}")


def validate(body: Any, *, count_only: bool = False) -> dict[str, Any]:
    """``body`` as a Messages request, or ``_Invalid`` naming the field that is wrong."""
    if not isinstance(body, dict):
        raise _Invalid("Input should be a valid dictionary")
    allowed = COUNT_FIELDS if count_only else REQUEST_FIELDS
    for name in body:
        if name not in allowed:
            raise _Invalid(f"{name}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise _Invalid("model: Field required" if "model" not in body
                       else "model: Input should be a valid string")
    if not count_only:
        if "max_tokens" not in body:
            raise _Invalid("max_tokens: Field required")
        tokens = body["max_tokens"]
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise _Invalid("max_tokens: Input should be a valid integer")
        if tokens < 1:
            raise _Invalid("max_tokens: Input should be greater than or equal to 1")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _Invalid("stream: Input should be a valid boolean")
        _check_number(body, "temperature", 0, 1)
        _check_number(body, "top_p", 0, 1)
        _check_number(body, "top_k", 0, None)
        stops = body.get("stop_sequences", [])
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _Invalid("stop_sequences: Input should be a valid list of strings")
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
            raise _Invalid("metadata: Extra inputs are not permitted")
    if "messages" not in body:
        raise _Invalid("messages: Field required")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _Invalid("messages: Input should be a valid list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Invalid(f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise _Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise _Invalid(f"messages.{i}.content: Field required")
        _check_content(f"messages.{i}.content", message["content"])
    system = body.get("system", "")
    if not isinstance(system, str) and not (isinstance(system, list) and all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
            for b in system)):
        raise _Invalid("system: Input should be a valid string or list of text blocks")
    tools = body.get("tools", [])
    if not isinstance(tools, list):
        raise _Invalid("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _Invalid(f"tools.{i}.name: Field required")
        if "type" not in tool and not isinstance(tool.get("input_schema"), dict):
            raise _Invalid(f"tools.{i}.custom.input_schema: Field required")
    if "tool_choice" in body:
        choice = body["tool_choice"]
        if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
            raise _Invalid("tool_choice: Input tag found using 'type' does not match any of the "
                           "expected tags: 'auto', 'any', 'tool', 'none'")
        if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
            raise _Invalid("tool_choice.tool.name: Field required")
    return body


# ----------------------------------------------------------------------------- the server


class _Exchange:
    """One HTTP request/response on the ASGI interface, with the client's going away watched."""

    def __init__(self, fake: FakeAnthropic, receive: Receive, send: Send) -> None:
        self.fake = fake
        self.receive = receive
        self._send = send
        self.request_id = _ident("req_011C", 20)
        self.gone = asyncio.Event()
        self.started = False
        self.finished = False
        self._watcher: asyncio.Task[None] | None = None

    async def read_body(self) -> bytes | None:
        chunks: list[bytes] = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self._watcher = asyncio.create_task(self._watch())
        return b"".join(chunks)

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone.set()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    @property
    def over(self) -> bool:
        """The client went away or the server is stopping: the response should end now."""
        return self.gone.is_set() or self.fake._stopping.is_set()

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if the response should end: whether it should."""
        deadline = time.monotonic() + seconds
        while not self.over:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), timeout=min(left, POLL))
        return True

    async def send(self, message: AsgiMessage) -> bool:
        """Send an ASGI message; False when the client has gone away."""
        if self.gone.is_set():
            return False
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        try:
            await self._send(message)
        except OSError:  # uvicorn's ClientDisconnected
            self.gone.set()
            return False
        return True

    async def start(self, status: int, content_type: str,
                    extra: dict[str, str] | None = None) -> bool:
        headers = {"content-type": content_type, "request-id": self.request_id,
                   "anthropic-organization-id": "00000000-0000-0000-0000-000000000000"}
        if content_type.startswith("text/event-stream"):
            headers["cache-control"] = "no-cache"
        headers.update(extra or {})
        self.started = True
        return await self.send({
            "type": "http.response.start", "status": status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        })

    async def json(self, status: int, payload: dict[str, Any],
                   extra: dict[str, str] | None = None) -> None:
        if await self.start(status, "application/json", extra):
            await self.send({"type": "http.response.body", "body": _dumps(payload).encode()})

    async def error(self, status: int, error_type: str, message: str | None = None,
                    extra: dict[str, str] | None = None) -> None:
        await self.json(status, {
            "type": "error",
            "error": {"type": error_type, "message": message or DEFAULT_MESSAGES.get(
                error_type, "Error")},
            "request_id": self.request_id,
        }, extra)

    async def event(self, name: str, data: dict[str, Any]) -> bool:
        chunk = f"event: {name}\ndata: {_dumps(data)}\n\n".encode()
        return await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def end(self) -> None:
        await self.send({"type": "http.response.body", "body": b""})


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _usage(input_tokens: int, output_tokens: int, *, full: bool = True) -> dict[str, Any]:
    """A message's usage; ``full=False``: the cumulative counts a ``message_delta`` carries."""
    usage: dict[str, Any] = {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0, "output_tokens": output_tokens}
    if full:
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
        usage["service_tier"] = "standard"
    return usage


def _message(body: dict[str, Any], content: list[dict[str, Any]], stop_reason: str | None,
             stop_sequence: str | None, usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": _ident("msg_01", 22), "type": "message", "role": "assistant",
            "model": body["model"], "content": content, "stop_reason": stop_reason,
            "stop_sequence": stop_sequence, "stop_details": None, "usage": usage}


class FakeAnthropic:
    """A local server speaking Anthropic's Messages API; run in a background thread (uvicorn,
    own event loop) on a free 127.0.0.1 port. ``stop()`` then ``start()`` reuses the port."""

    def __init__(self, api_key: str = "sk-ant-test") -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.port = 0
        self._steps: deque[Step] = deque()
        self._lock = threading.Lock()
        self._inflight = 0
        self._max_inflight = 0
        self._stopping = threading.Event()
        self._serving = ThreadedServer(self._asgi, "fake-anthropic")

    # -- control, from the test's thread

    @property
    def url(self) -> str:
        """The base URL, for the SDK's ``base_url``; the routes are under ``/v1/``."""
        return self._serving.url

    @property
    def inflight(self) -> int:
        """``/v1/messages`` requests whose response has not ended and whose client is there."""
        with self._lock:
            return self._inflight

    @property
    def max_inflight(self) -> int:
        with self._lock:
            return self._max_inflight

    @property
    def pending(self) -> int:
        """Scripted steps not yet consumed."""
        with self._lock:
            return len(self._steps)

    def script(self, *steps: Step) -> None:
        """Queue behaviours for the next ``/v1/messages`` calls, consumed in order.

        Only requests that pass the API-key, version and body checks consume a step.
        """
        for step in steps:
            if not isinstance(step, Reply | Fail | ErrorAfter | Hang):
                raise TypeError(f"not a step: {step!r}")
        with self._lock:
            self._steps.extend(steps)

    def start(self) -> FakeAnthropic:
        """Serve; returns once the server accepts connections."""
        self._stopping.clear()
        self._serving.start()
        self.port = self._serving.port
        return self

    def stop(self) -> None:
        """End open responses (streams stop where they are), then the server."""
        if self._serving.running:
            self._stopping.set()
            self._serving.stop()

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    # -- the ASGI application, on the server's thread

    def _authorized(self, headers: dict[str, str]) -> bool:
        """The key is in ``x-api-key``, or (as the SDK sends it) ``Authorization: Bearer``."""
        if "x-api-key" in headers:
            return headers["x-api-key"] == self.api_key
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.api_key

    def _next_step(self) -> Step:
        with self._lock:
            return self._steps.popleft() if self._steps else Reply()

    def _enter(self) -> None:
        with self._lock:
            self._inflight += 1
            self._max_inflight = max(self._max_inflight, self._inflight)

    def _leave(self) -> None:
        with self._lock:
            self._inflight -= 1

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        exchange = _Exchange(self, receive, send)
        try:
            await self._handle(scope, exchange)
        finally:
            exchange.close()

    async def _handle(self, scope: Scope, exchange: _Exchange) -> None:
        raw = await exchange.read_body()
        if raw is None:
            return
        method, path = scope["method"], scope["path"]
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        self.requests.append(Recorded(method, path, headers,
                                      body if isinstance(body, dict) else None))
        messages = path == "/v1/messages"
        if messages:
            self._enter()
        try:
            await self._route(exchange, method, path, headers, body, bad_json)
            if exchange.started and not exchange.finished:
                await exchange.end()
        finally:
            if messages:
                self._leave()

    async def _route(self, exchange: _Exchange, method: str, path: str, headers: dict[str, str],
                     body: Any, bad_json: bool) -> None:
        routes = {"/v1/messages": "POST", "/v1/messages/count_tokens": "POST",
                  "/v1/models": "GET"}
        model_path = path.startswith("/v1/models/")
        if path not in routes and not model_path:
            return await exchange.error(404, "not_found_error", f"Not found: {path}")
        if method != ("GET" if model_path else routes[path]):
            return await exchange.error(405, "invalid_request_error",
                                        f"Method {method} not allowed for {path}")
        if not self._authorized(headers):
            return await exchange.error(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return await exchange.error(400, "invalid_request_error",
                                        "anthropic-version: header is required")
        if method == "GET":
            return await self._models(exchange, path)
        if bad_json:
            return await exchange.error(400, "invalid_request_error",
                                        "There was an issue with your request body: not JSON")
        try:
            request = validate(body, count_only=path.endswith("/count_tokens"))
        except _Invalid as invalid:
            return await exchange.error(400, "invalid_request_error", str(invalid))
        if path.endswith("/count_tokens"):
            return await exchange.json(200, {"input_tokens": input_tokens(request)})
        step = self._next_step()
        if isinstance(step, Fail):
            extra = {}
            if step.retry_after is not None:
                seconds = step.retry_after
                extra["retry-after"] = str(int(seconds)) if seconds == int(seconds) \
                    else str(seconds)
            return await exchange.error(step.status, step.error_type, step.message, extra)
        if not request.get("stream", False):
            if isinstance(step, Reply):
                return await self._whole(exchange, step, request)
            if isinstance(step, ErrorAfter):  # what a failure is without a stream
                return await exchange.error(ERROR_STATUS.get(step.error_type, 500),
                                            step.error_type, step.message)
            await exchange.pause(float("inf"))  # Hang: no answer at all
            return None
        if not await exchange.start(200, "text/event-stream; charset=utf-8"):
            return None
        if isinstance(step, Reply):
            return await self._stream(exchange, step, request)
        if isinstance(step, ErrorAfter):
            return await self._error_after(exchange, step, request)
        return await self._hang(exchange, request)

    async def _models(self, exchange: _Exchange, path: str) -> None:
        data = [{"type": "model", "id": model, "display_name": name, "created_at": created,
                 "lifecycle": "active", "max_input_tokens": 200000, "max_tokens": 64000}
                for model, name, created in MODELS]
        if path == "/v1/models":
            return await exchange.json(200, {"data": data, "has_more": False,
                                             "first_id": data[0]["id"],
                                             "last_id": data[-1]["id"]})
        wanted = path.removeprefix("/v1/models/")
        for model in data:
            if model["id"] == wanted:
                return await exchange.json(200, model)
        return await exchange.error(404, "not_found_error", f"model: {wanted}")

    async def _whole(self, exchange: _Exchange, step: Reply, request: dict[str, Any]) -> None:
        plan = _plan(step, request)
        deltas = len(plan.pieces) + sum(
            len(_json_pieces(json.dumps(t["input"]))) for t in plan.tool_uses)
        if step.delay and await exchange.pause(step.delay * deltas):
            return None
        content: list[dict[str, Any]] = []
        if plan.pieces:
            content.append({"type": "text", "text": "".join(plan.pieces)})
        content.extend(plan.tool_uses)
        await exchange.json(200, _message(request, content, plan.stop_reason, plan.stop_sequence,
                                          _usage(plan.input_tokens, plan.output_tokens)))
        return None

    async def _message_start(self, exchange: _Exchange, request: dict[str, Any],
                             tokens: int) -> bool:
        return await exchange.event("message_start", {
            "type": "message_start",
            "message": _message(request, [], None, None, _usage(tokens, 1))})

    async def _stream(self, exchange: _Exchange, step: Reply, request: dict[str, Any]) -> None:
        plan = _plan(step, request)
        if not await self._message_start(exchange, request, plan.input_tokens):
            return None
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []  # start, deltas
        if plan.pieces:
            blocks.append(({"type": "text", "text": ""},
                           [{"type": "text_delta", "text": p} for p in plan.pieces]))
        for tool in plan.tool_uses:
            blocks.append(({**tool, "input": {}},
                           [{"type": "input_json_delta", "partial_json": p}
                            for p in _json_pieces(json.dumps(tool["input"]))]))
        if not blocks and not await exchange.event("ping", {"type": "ping"}):
            return None
        for index, (start, deltas) in enumerate(blocks):
            if not await exchange.event("content_block_start", {
                    "type": "content_block_start", "index": index, "content_block": start}):
                return None
            if index == 0 and not await exchange.event("ping", {"type": "ping"}):
                return None
            for delta in deltas:
                if step.delay and await exchange.pause(step.delay):
                    return None
                if exchange.over or not await exchange.event("content_block_delta", {
                        "type": "content_block_delta", "index": index, "delta": delta}):
                    return None
            if not await exchange.event("content_block_stop",
                                        {"type": "content_block_stop", "index": index}):
                return None
        if exchange.over:
            return None
        if not await exchange.event("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence,
                          "stop_details": None},
                "usage": _usage(plan.input_tokens, plan.output_tokens, full=False)}):
            return None
        await exchange.event("message_stop", {"type": "message_stop"})
        return None

    async def _error_after(self, exchange: _Exchange, step: ErrorAfter,
                           request: dict[str, Any]) -> None:
        if not await self._message_start(exchange, request, input_tokens(request)):
            return None
        if not await exchange.event("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}):
            return None
        if not await exchange.event("ping", {"type": "ping"}):
            return None
        for piece in _pieces(step.text):
            if not await exchange.event("content_block_delta", {
                    "type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": piece}}):
                return None
        await exchange.event("error", {
            "type": "error", "error": {"type": step.error_type, "message": step.message}})
        return None

    async def _hang(self, exchange: _Exchange, request: dict[str, Any]) -> None:
        if await self._message_start(exchange, request, input_tokens(request)):
            while not exchange.over:
                await exchange.pause(3600)
