"""A bad-input corpus against every surface that takes a body: the Segmind routes
(``/v1/{model}``, ``/v2/{model}``), Anthropic's (``/v1/messages``, ``/count_tokens``), OpenAI's
(``/v1/chat/completions``), the admin API and ``PUT /v1/account/webhook``.

Every case must get its documented 4xx (400 bad body, 401 bad key, 404 unknown model, 413 body
over the limit) in the error shape of the surface it came in on, leave the server healthy, and
charge nothing: each case runs under its own metered account, whose credits and history must
be as they were before.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import socket
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests._server import ServerProcess
from tests.conftest import SERVER_CONFIG
from tests.images import image_b64

PRICED = "echo-priced"  # 0.001 USD a token: a request that runs shows in the balance
VISION = "echo-vision"
HELLO = [{"role": "user", "content": "hello there"}]
SPLICE = "@@splice@@"  # stands for a raw JSON literal that json.dumps cannot write

# Anthropic's error type for each status this corpus expects
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                   404: "not_found_error", 413: "request_too_large"}


# -- routes ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    id: str
    method: str
    path: str  # {model} and {account} are filled in per case
    shape: str  # the error shape: segmind, anthropic or openai
    base: Callable[[str, str], dict[str, Any]]  # (model, account) -> a valid body
    number: str  # the top-level field a number goes into
    admin: bool = False  # sent with an admin key, else with the case account's key
    job: bool = False  # creates a job (takes ?webhook=)
    llm: bool = False  # takes messages


SEGMIND_V1 = Route("segmind-v1", "POST", "/v1/{model}", "segmind",
                   lambda model, account: {"messages": HELLO}, "max_tokens", job=True, llm=True)
SEGMIND_V2 = Route("segmind-v2", "POST", "/v2/{model}", "segmind",
                   lambda model, account: {"messages": HELLO}, "max_tokens", job=True, llm=True)
MESSAGES = Route("messages", "POST", "/v1/messages", "anthropic",
                 lambda model, account: {"model": model, "max_tokens": 8, "messages": HELLO},
                 "max_tokens", job=True, llm=True)
COUNT_TOKENS = Route("count-tokens", "POST", "/v1/messages/count_tokens", "anthropic",
                     lambda model, account: {"model": model, "messages": HELLO},
                     "max_tokens", llm=True)
CHAT = Route("chat", "POST", "/v1/chat/completions", "openai",
             lambda model, account: {"model": model, "messages": HELLO},
             "max_tokens", job=True, llm=True)
ADMIN_KEYS = Route("admin-keys", "POST", "/v1/admin/keys", "segmind",
                   lambda model, account: {"account": f"{account}-new", "credits": 1.0},
                   "credits", admin=True)
ADD_CREDITS = Route("add-credits", "POST", "/v1/admin/accounts/{account}/credits", "segmind",
                    lambda model, account: {"amount": 0.5}, "amount", admin=True)
SET_CREDITS = Route("set-credits", "PUT", "/v1/admin/accounts/{account}/credits", "segmind",
                    lambda model, account: {"balance": 2.0}, "balance", admin=True)
ACCOUNT_WEBHOOK = Route("account-webhook", "PUT", "/v1/account/webhook", "segmind",
                        lambda model, account: {"url": "https://example.com/hook"}, "url")

LLM_ROUTES = (SEGMIND_V1, SEGMIND_V2, MESSAGES, COUNT_TOKENS, CHAT)
ROUTES = (*LLM_ROUTES, ADMIN_KEYS, ADD_CREDITS, SET_CREDITS, ACCOUNT_WEBHOOK)


# -- building bodies -------------------------------------------------------------------------

Build = Callable[[Route, dict[str, Any]], bytes]


def dumps(body: dict[str, Any], literal: str | None = None) -> bytes:
    """``body`` as JSON (non-ASCII as escapes), with ``literal`` written raw where SPLICE is."""
    text = json.dumps(body)
    if literal is not None:
        text = text.replace(json.dumps(SPLICE), literal)
    return text.encode()


def valid(route: Route, base: dict[str, Any]) -> bytes:
    return dumps(base)


def raw(data: bytes) -> Build:
    return lambda route, base: data


def merged(**fields: Any) -> Build:
    """The route's valid body with ``fields`` set."""
    return lambda route, base: dumps({**base, **fields})


def truncated(route: Route, base: dict[str, Any]) -> bytes:
    return dumps(base)[:-4]


def number(literal: str) -> Build:
    """The route's valid body with its number field written as ``literal``."""
    return lambda route, base: dumps({**base, route.number: SPLICE}, literal)


def nested(depth: int) -> Build:
    """A value nested ``depth`` lists deep: a message's content, or the route's field."""
    literal = "[" * depth + "]" * depth

    def build(route: Route, base: dict[str, Any]) -> bytes:
        if route.llm:
            return dumps({**base, "messages": [{"role": "user", "content": SPLICE}]}, literal)
        return dumps({**base, route.number: SPLICE}, literal)

    return build


def nested_metadata(depth: int) -> Build:
    literal = "[" * depth + "]" * depth
    return lambda route, base: dumps({**base, "metadata": {"deep": SPLICE}}, literal)


def text_blocks(*texts: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": t} for t in texts]}]


def image(media_type: str, data: str) -> Build:
    """A user turn of an image and a line of text; OpenAI's form on the OpenAI route."""

    def build(route: Route, base: dict[str, Any]) -> bytes:
        if route.shape == "openai":
            block: dict[str, Any] = {"type": "image_url",
                                     "image_url": {"url": f"data:{media_type};base64,{data}"}}
        else:
            block = {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                                 "data": data}}
        content = [block, {"type": "text", "text": "describe this"}]
        return dumps({**base, "messages": [{"role": "user", "content": content}]})

    return build


def png(width: int, height: int, idat: bytes) -> str:
    """A PNG file (base64) whose header says ``width`` x ``height`` RGB, with ``idat`` as its
    only image data, whether or not that decodes to the size the header claims."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))
    return base64.b64encode(data).decode()


# -- cases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    build: Build = valid
    status: int = 400
    needle: str | None = None  # the message must contain it
    model: str = PRICED
    auth: str = "key"  # key, none, wrong, empty-bearer, bearer-only
    webhook: str | None = None  # ?webhook= on a job route, the body's url on the webhook route
    hidden: tuple[str, ...] = ()  # the message must not contain these


OVERSIZED = b'{"messages": "' + b"x" * 1_100_000 + b'"}'  # the limit is 1,000,000 bytes
HUGE_INT = "1" + "0" * 5000

COMMON = [
    Case("empty", raw(b"")),
    Case("whitespace", raw(b" \n\t \r\n")),
    Case("not-json", raw(b"not json")),
    Case("truncated", truncated),
    Case("array", raw(b'[{"messages": []}]')),
    Case("string", raw(b'"hello"')),
    Case("number", raw(b"42")),
    Case("null", raw(b"null")),
    Case("invalid-utf8", raw(b'{"messages": "\xff\xfe\xc3("}')),
    Case("unknown-field", merged(colour="blue"), needle="colour"),
    Case("int-5000-digits", number(HUGE_INT)),
    Case("nested-1000", nested(1000)),
    Case("nested-100000", nested(100_000)),
    Case("oversized", raw(OVERSIZED), status=413),
    Case("no-key", auth="none", status=401),
    Case("wrong-key", auth="wrong", status=401),
    Case("empty-bearer", auth="empty-bearer", status=401),
    Case("bearer-only", auth="bearer-only", status=401),
]

LLM = [
    Case("messages-string", merged(messages="hi")),
    Case("messages-object", merged(messages={"role": "user", "content": "hi"})),
    Case("message-without-role", merged(messages=[{"content": "hi"}])),
    Case("unknown-role", merged(messages=[{"role": "wizard", "content": "hi"}])),
    Case("empty-messages", merged(messages=[])),
    Case("assistant-first", merged(messages=[{"role": "assistant", "content": "hi"},
                                             {"role": "user", "content": "hello"}])),
    Case("max-tokens-0", merged(max_tokens=0), needle="max_tokens"),
    Case("max-tokens-negative", merged(max_tokens=-1), needle="max_tokens"),
    Case("max-tokens-1e12", merged(max_tokens=10**12), needle="max_tokens"),
    Case("max-tokens-string", merged(max_tokens="10"), needle="max_tokens"),
    Case("max-tokens-float", merged(max_tokens=1.5), needle="max_tokens"),
    Case("temperature-5", merged(temperature=5), needle="temperature"),
    Case("temperature-string", merged(temperature="hot"), needle="temperature"),
    Case("unknown-model", model="no-such-model", status=404, needle="no-such-model"),
    Case("metadata-nested-1000", nested_metadata(1000)),
    Case("metadata-nested-100000", nested_metadata(100_000)),
    Case("many-values", merged(metadata={"x": [0] * 300_000}), needle="too many values"),
    Case("lone-surrogate", merged(messages=[{"role": "user", "content": "hi \ud800 there"}])),
    Case("lone-surrogate-alone", merged(messages=[{"role": "user", "content": "\ud800"}])),
    Case("lone-low-surrogate", merged(messages=text_blocks("hi", "there \udfff"))),
    Case("image-bomb", image("image/png", png(20_000, 20_000, zlib.compress(b"\x00" * 61))),
         model=VISION, needle="messages[0].content[0]"),
    Case("image-empty-idat", image("image/png", png(8, 8, b"")),
         model=VISION, needle="messages[0].content[0]"),
    Case("image-not-base64", image("image/png", "not base64!!"),
         model=VISION, needle="messages[0].content[0]"),
    Case("image-media-type-mismatch", image("image/png", image_b64("JPEG")),
         model=VISION, needle="messages[0].content[0]"),
]

# Malformed webhook URLs: refused whatever [webhooks] allow_private says.
MALFORMED_WEBHOOKS = [
    Case("webhook-empty-label", webhook="http://a..example/", needle="webhook"),
    Case("webhook-long-label", webhook=f"http://{'a' * 64}.example.com/", needle="webhook"),
    Case("webhook-control-char", webhook="http://example.com/\x01hook", needle="webhook"),
    Case("webhook-control-char-host", webhook="http://exam\x01ple.com/", needle="webhook"),
    Case("webhook-space", webhook="http://example.com/a hook", needle="webhook"),
    Case("webhook-ftp", webhook="ftp://x", needle="webhook"),
    Case("webhook-bad-a-label", webhook="http://xn--a.com/hook", needle="webhook"),
    Case("webhook-bad-a-label-https", webhook="https://xn--zz.example/", needle="webhook"),
]

# Credit amounts JSON can carry but no balance can hold.
ADMIN_AMOUNTS = {
    ADD_CREDITS.id: [Case(f"amount-{name}", number(literal), needle="amount")
                     for name, literal in [("nan", "NaN"), ("infinity", "Infinity"),
                                           ("minus-infinity", "-Infinity"), ("1e300", "1e300"),
                                           ("9.3e9", "9.3e9"), ("minus-9.3e9", "-9.3e9"),
                                           ("minus-1e300", "-1e300")]],
    SET_CREDITS.id: [Case(f"balance-{name}", number(literal), needle="balance")
                     for name, literal in [("nan", "NaN"), ("infinity", "Infinity"),
                                           ("minus-infinity", "-Infinity"), ("1e300", "1e300"),
                                           ("9.3e9", "9.3e9")]],
    ADMIN_KEYS.id: [Case(f"credits-{name}", number(literal), needle="credits")
                    for name, literal in [("nan", "NaN"), ("infinity", "Infinity"),
                                          ("1e300", "1e300"), ("9.3e9", "9.3e9")]],
}


def corpus() -> Iterator[Any]:
    for route in ROUTES:
        cases = list(COMMON)
        if route.llm:
            cases += LLM
        if route.job or route is ACCOUNT_WEBHOOK:
            cases += MALFORMED_WEBHOOKS
        cases += ADMIN_AMOUNTS.get(route.id, [])
        for case in cases:
            if not route.llm and case.id == "nested-100000":
                # 200 KB: over the 64 KB a settings route takes, before it is parsed
                case = dataclasses.replace(case, status=413)
            yield pytest.param(route, case, id=f"{route.id}:{case.id}")


# -- sending and checking --------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A server and one client for all its requests (each request brings its own key)."""

    server: ServerProcess
    http: httpx.Client

    def admin(self) -> dict[str, str]:
        return {"x-api-key": self.server.key}


@contextmanager
def target_of(server: ServerProcess) -> Iterator[Target]:
    # A connection per request: a server that closes the connection after a bad answer
    # must not fail the next case's request.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=server.url, timeout=60.0, limits=limits) as http:
        yield Target(server, http)


@pytest.fixture(scope="module")
def target(server: ServerProcess) -> Iterator[Target]:
    with target_of(server) as made:
        yield made


AUTH: dict[str, Callable[[str], dict[str, str]]] = {
    "key": lambda key: {"x-api-key": key},
    "none": lambda key: {},
    "wrong": lambda key: {"x-api-key": "sk-stratus-not-a-key-000000000000"},
    "empty-bearer": lambda key: {"authorization": "Bearer "},
    "bearer-only": lambda key: {"authorization": "Bearer"},
}


def send(target: Target, route: Route, case: Case, key: str, account: str) -> httpx.Response:
    base = route.base(case.model, account)
    params = None
    if case.webhook is not None:
        if route.job:
            params = {"webhook": case.webhook}
        else:
            base = {**base, "url": case.webhook}
    headers = {"content-type": "application/json", **AUTH[case.auth](key)}
    path = route.path.format(model=case.model, account=account)
    content = case.build(route, base)
    if case.auth == "empty-bearer" or case.status == 413:
        assert params is None
        return send_raw(target.server, route.method, path, content, headers)
    return target.http.request(route.method, path, content=content, params=params,
                               headers=headers)


def send_raw(server: ServerProcess, method: str, path: str, content: bytes,
             headers: dict[str, str]) -> httpx.Response:
    """One request written on a socket as given (httpx refuses a header value that ends in a
    space), and its answer, even when the server answered and closed before taking the whole
    body (as it may for a body over the limit)."""
    lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{server.port}",
             f"content-length: {len(content)}", "connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        # a server that answers before taking the whole body may reset the connection while
        # it is written: its answer is already on its way
        with suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + content)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())


def error_message(shape: str, response: httpx.Response, status: int) -> str:
    """The message of an error response in the surface's shape; fails on any other answer."""
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text[:500]}")
    body = response.json()
    if shape == "segmind":
        assert isinstance(body, dict) and set(body) >= {"error", "type", "request_id"}, body
        assert isinstance(body["type"], str) and body["type"], body
        assert body["request_id"] == response.headers["x-request-id"], body
        message = body["error"]
    elif shape == "anthropic":
        assert isinstance(body, dict) and body.get("type") == "error", body
        error = body["error"]
        assert error["type"] == ANTHROPIC_TYPES[status], body
        message = error["message"]
    else:
        error = body["error"]
        assert isinstance(error, dict) and isinstance(error.get("type"), str), body
        assert error["type"], body
        message = error["message"]
    assert isinstance(message, str) and message.strip(), body
    return message


def metered(target: Target, route: Route, case: Case) -> tuple[str, str]:
    """A fresh account with 1 USD of credits, and a key of it."""
    account = f"bad-{route.id}-{case.id}-{uuid.uuid4().hex[:8]}".lower().replace(".", "-")
    response = target.http.post("/v1/admin/keys", headers=target.admin(),
                                json={"account": account, "credits": 1.0})
    assert response.status_code == 201, response.text
    return account, response.json()["secret"]


def assert_nothing_charged(target: Target, key: str) -> None:
    """The account of ``key`` is as ``metered`` made it: nothing charged, nothing
    reserved, no request in its history."""
    headers = {"x-api-key": key}
    account = target.http.get("/v1/account", headers=headers)
    assert account.status_code == 200, account.text
    credits = account.json()["credits"]
    assert credits == {"currency": "USD", "unlimited": False, "balance": 1.0,
                       "reserved": 0.0, "available": 1.0}, credits
    history = target.http.get("/v1/requests", params={"limit": 100}, headers=headers)
    assert history.status_code == 200, history.text
    assert history.json()["data"] == [], history.json()["data"]


def check_refused(target: Target, route: Route, case: Case) -> str:
    """Send ``case`` on ``route`` from a fresh metered account; check the answer, the
    server's health and the account; return the error message."""
    account, key = metered(target, route, case)
    response = send(target, route, case, target.server.key if route.admin else key, account)
    message = error_message(route.shape, response, case.status)
    if case.needle is not None:
        assert case.needle.lower() in message.lower(), message
    for text in case.hidden:
        assert text not in message, message
    health = target.http.get("/health")
    assert health.status_code == 200, health.text
    assert_nothing_charged(target, key)
    if route is ADMIN_KEYS:  # the refused key made no account
        made = target.http.get(f"/v1/admin/accounts/{account}-new", headers=target.admin())
        assert made.status_code == 404, made.text
    return message


@pytest.mark.parametrize(("route", "case"), list(corpus()))
def test_bad_input_is_refused(target: Target, route: Route, case: Case) -> None:
    check_refused(target, route, case)


# -- webhooks to internal addresses ----------------------------------------------------------

@pytest.fixture(scope="module")
def strict_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A server of the shared configuration, but sending webhooks to public addresses only."""
    config = SERVER_CONFIG.replace("allow_private = true", "allow_private = false")
    assert "allow_private = false" in config
    server = ServerProcess(tmp_path_factory.mktemp("strict"), config).start()
    try:
        with target_of(server) as made:
            yield made
    finally:
        server.kill()


INTERNAL_WEBHOOKS = [
    Case("ipv4-loopback", webhook="http://127.0.0.1/hook"),
    Case("ipv4-mapped", webhook="http://[::ffff:127.0.0.1]/hook"),
    Case("nat64", webhook="http://[64:ff9b::7f00:1]/hook"),
    Case("6to4", webhook="http://[2002:7f00:1::]/hook"),
    Case("site-local", webhook="http://[fec0::1]/hook"),
    Case("ipv4-compatible", webhook="http://[::127.0.0.1]/hook"),
    # a name: the 400 must not tell the client what it resolved to
    Case("localhost", webhook="http://localhost/hook", hidden=("127.0.0.1", "::1")),
    Case("localhost-port", webhook="http://localhost:8080/hook",
         hidden=("127.0.0.1", "::1")),
]


@pytest.mark.parametrize("route", [SEGMIND_V1, SEGMIND_V2, MESSAGES, CHAT, ACCOUNT_WEBHOOK],
                         ids=lambda route: route.id)
@pytest.mark.parametrize("case", INTERNAL_WEBHOOKS, ids=lambda case: case.id)
def test_webhook_to_an_internal_address_is_refused(strict_target: Target, route: Route,
                                                   case: Case) -> None:
    message = check_refused(strict_target, route, case)
    assert "webhook" in message.lower(), message
