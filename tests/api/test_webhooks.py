"""Webhooks over real HTTP: signed, retried until accepted, logged; private URLs refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks import Webhook

from tests._server import ServerProcess
from tests.api.test_segmind import submit, wait_status
from tests.conftest import SERVER_CONFIG, new_key, user


class Receiver:
    """An HTTP endpoint that answers with the given status codes in turn (then 200)."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()
                if code == 200:
                    receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made: list[Receiver] = []

    def make(codes: list[int]) -> Receiver:
        made.append(Receiver(codes))
        return made[-1]

    yield make
    for one in made:
        one.close()


def delivery_log(client: httpx.Client, rid: str, want: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log = client.get(f"/v1/requests/{rid}/webhook").json()
        if log["status"] == want:
            return log
        time.sleep(0.1)
    raise AssertionError(f"webhook of {rid} never became {want}: {log}")


def test_receiver_failing_twice_then_accepting(api: httpx.Client, server: ServerProcess,
                                               receiver) -> None:
    hook = receiver([500, 503])
    key = new_key(api, "webhooks-retry")
    with server.client(key) as client:
        secret = client.get("/v1/account").json()["webhook"]["secret"]
        rid = submit(client, "echo", user("ping me"),
                     params={"webhook": hook.url})["request_id"]
        log = delivery_log(client, rid, "delivered")
    assert hook.arrived.is_set() and len(hook.calls) == 3
    ids = {headers["webhook-id"] for headers, _ in hook.calls}
    assert len(ids) == 1 and log["webhook_id"] in ids
    for headers, body in hook.calls:  # each attempt is signed, and verifies
        payload = Webhook(secret).verify(body, headers)
        assert payload["request_id"] == rid and payload["status"] == "COMPLETED"
    assert [a["status_code"] for a in log["attempts"]] == [500, 503, 200]
    assert [a["attempt"] for a in log["attempts"]] == [1, 2, 3]
    assert log["attempts"][0]["error"] == "the receiver answered HTTP 500"
    assert log["attempts"][2]["error"] is None


def test_account_default_webhook_and_failed_jobs(api: httpx.Client, server: ServerProcess,
                                                 receiver) -> None:
    hook = receiver([])
    key = new_key(api, "webhooks-default")
    with server.client(key) as client:
        set_ = client.put("/v1/account/webhook", json={"url": hook.url})
        assert set_.status_code == 200 and set_.json()["url"] == hook.url
        rid = submit(client, "echo-slow", user(" ".join(["w"] * 40)))["request_id"]
        wait_status(client, rid, {"PROCESSING"})
        client.post(f"/v2/requests/{rid}/cancel")
        delivery_log(client, rid, "delivered")
        body = json.loads(hook.calls[0][1])
        assert body["status"] == "FAILED" and body["error"] == "cancelled"
        assert client.get(f"/v1/requests/{rid}").json()["webhook"]["status"] == "delivered"
        client.put("/v1/account/webhook", json={"url": None})
        plain = client.post("/v1/echo", json=user("no hook")).headers["x-request-id"]
        missing = client.get(f"/v1/requests/{plain}/webhook")
        assert missing.status_code == 404 and "has no webhook" in missing.json()["error"]


def test_an_unreachable_receiver_is_retried_then_given_up(make_server) -> None:
    config = SERVER_CONFIG.replace("initial_backoff = 0.2",
                                   "initial_backoff = 0.1\nretry_window = 1")
    server = make_server(config)
    with server.client() as api:
        rid = submit(api, "echo", user("nobody listens"),
                     params={"webhook": "http://127.0.0.1:9/hook"})["request_id"]
        log = delivery_log(api, rid, "failed")
    assert len(log["attempts"]) >= 2
    assert all(a["status_code"] is None and a["error"] for a in log["attempts"])


def test_webhook_to_a_private_address_is_refused(make_server) -> None:
    config = SERVER_CONFIG.replace("allow_private = true", "allow_private = false")
    server = make_server(config)
    with server.client() as api:
        for url in ("http://127.0.0.1:8080/hook", "http://10.0.0.5/hook",
                    "http://169.254.169.254/latest", "http://[64:ff9b::a00:5]/hook",
                    "http://[::ffff:0:a00:5]/hook", "http://[2002:a00:5::1]/hook"):
            refused = api.post("/v2/echo", json=user("hi"), params={"webhook": url})
            assert refused.status_code == 400
            assert "only sent to public addresses" in refused.json()["error"]
        default = api.put("/v1/account/webhook", json={"url": "http://localhost/hook"})
        assert default.status_code == 400
        # the message does not say where the name points
        message = default.json()["error"]
        assert "non-public address" in message
        assert "127.0.0.1" not in message and "::1" not in message
        bad = api.post("/v2/echo", json=user("hi"), params={"webhook": "gopher://x"})
        assert bad.status_code == 400 and "http:// or https://" in bad.json()["error"]
        # nothing was queued or recorded for the refused requests
        assert api.get("/v1/requests").json()["data"] == []


BAD_URLS = [
    ("http://a..example/hook", "invalid host name"),
    ("http://" + "a" * 64 + ".example/hook", "invalid host name"),
    ("http://example.com/\x01", "control character"),  # ?webhook=http://example.com/%01
    ("http://example.com/a b", "whitespace"),
]


@pytest.mark.parametrize(("url", "says"), BAD_URLS)
def test_webhook_urls_that_cannot_be_sent_are_refused(api: httpx.Client, server: ServerProcess,
                                                      url: str, says: str) -> None:
    key = new_key(api, "webhooks-bad-urls")
    with server.client(key) as client:
        for refused in (client.post("/v2/echo", json=user("hi"), params={"webhook": url}),
                        client.post("/v1/echo", json=user("hi"), params={"webhook": url}),
                        client.put("/v1/account/webhook", json={"url": url})):
            assert refused.status_code == 400, refused.text
            body = refused.json()
            assert body["type"] == "invalid_request"
            assert "webhook URL" in body["error"] and says in body["error"]
        assert client.get("/v1/requests").json()["data"] == []
        assert client.get("/v1/account").json()["webhook"]["url"] is None
