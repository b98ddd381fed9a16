"""Usage, a request's content, an account's ledger over HTTP; and the console's pages."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import httpx
import pytest
from fastapi.testclient import TestClient

from stratus.api.app import create_app
from stratus.runtime import Runtime
from tests._server import ServerProcess
from tests.api.test_segmind import submit, wait_status
from tests.conftest import new_key, user
from tests.images import image_b64


@pytest.fixture
def fresh_key(api: httpx.Client) -> str:
    return new_key(api, f"usage-{time.monotonic_ns()}")


def test_usage_sums_spend_and_tokens_per_day_and_model(fresh_key: str,
                                                       server: ServerProcess) -> None:
    with server.client(fresh_key) as client:
        empty = client.get("/v1/usage", params={"days": 7}).json()
        assert empty["total"] == {"requests": 0, "completed": 0, "failed": 0,
                                  "input_tokens": 0, "output_tokens": 0, "cost": 0.0}
        assert empty["models"] == [] and len(empty["daily"]) == 7
        assert client.post("/v1/echo-priced", json=user("one two")).status_code == 200
        assert client.post("/v1/claude-3-haiku", json=user("three")).status_code == 200
        failed = client.post("/v1/echo-timeout", json=user(" ".join(["w"] * 10)))
        assert failed.status_code >= 400
        rid = failed.headers["x-request-id"]
        wait_status(client, rid, {"FAILED"})
        report = client.get("/v1/usage").json()
    today = datetime.now(UTC).date().isoformat()
    assert report["object"] == "usage" and report["currency"] == "USD"
    assert len(report["daily"]) == 30 and report["daily"][-1]["date"] == today
    assert report["since"].startswith(report["daily"][0]["date"] + "T00:00:00")
    by_model = {m["model"]: m for m in report["models"]}
    assert list(by_model) == ["echo", "echo-priced", "echo-timeout"]  # aliases by slug
    assert by_model["echo-priced"] == {
        "model": "echo-priced", "requests": 1, "completed": 1, "failed": 0,
        "input_tokens": 2, "output_tokens": 2, "cost": pytest.approx(0.004)}
    assert (by_model["echo-timeout"]["failed"], by_model["echo-timeout"]["cost"]) == (1, 0)
    assert report["total"]["requests"] == 3 and report["total"]["completed"] == 2
    assert report["total"]["cost"] == pytest.approx(
        sum(m["cost"] for m in report["models"]))
    assert [d["requests"] for d in report["daily"]] == [0] * 29 + [3]
    assert report["daily"][-1]["models"] == report["models"]


@pytest.mark.parametrize("query", ["days=0", "days=367", "days=x", "since=2026-01-01"])
def test_usage_refuses_a_span_it_does_not_know(api: httpx.Client, query: str) -> None:
    response = api.get(f"/v1/usage?{query}")
    assert response.status_code == 400
    assert re.search(r"days|unknown query parameter", response.json()["error"])


def test_content_shows_input_and_output_while_the_result_is_kept(
        fresh_key: str, server: ServerProcess) -> None:
    image = image_b64()
    body = {"system": "be brief", "max_tokens": 20, "temperature": 0.5, "messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": image}},
            {"type": "text", "text": "what is this"}]}]}
    with server.client(fresh_key) as client:
        done = client.post("/v1/echo-vision", json=body)
        assert done.status_code == 200, done.text
        rid = done.headers["x-request-id"]
        content = client.get(f"/v1/requests/{rid}/content")
        assert content.status_code == 200, content.text
        got = content.json()
        assert (got["request_id"], got["status"], got["model"]) == (rid, "COMPLETED",
                                                                     "echo-vision")
        assert got["input"]["system"] == "be brief" and got["input"]["max_tokens"] == 20
        assert got["input"]["temperature"] == 0.5
        parts = got["input"]["messages"][0]["parts"]
        assert parts[0]["type"] == "image" and parts[0]["data"] is None
        assert parts[0]["data_bytes"] == len(base64.b64decode(image))
        assert parts[1] == {"type": "text", "text": "what is this"}
        assert got["output"] == done.json() and got["error"] is None
        assert got["metrics"]["output_tokens"] == done.json()["usage"]["output_tokens"]
        assert re.match(r"\d{4}-\d\d-\d\dT", got["expires_at"])
        # another account's request is not found
        assert server.client().get(f"/v1/requests/{rid}/content").status_code == 404
        queued = submit(client, "echo-slow", user(" ".join(["w"] * 30)))["request_id"]
        pending = client.get(f"/v1/requests/{queued}/content").json()
        assert pending["status"] in ("QUEUED", "PROCESSING") and pending["output"] is None
        client.post(f"/v2/requests/{queued}/cancel")


def test_the_ledger_of_an_account_pages_newest_first(api: httpx.Client,
                                                     server: ServerProcess) -> None:
    name = f"ledger-{time.monotonic_ns()}"
    key = new_key(api, name, credits=10)
    assert api.post(f"/v1/admin/accounts/{name}/credits",
                    json={"amount": 2.5, "note": "top-up"}).status_code == 200
    with server.client(key) as client:
        rid = client.post("/v1/echo-priced", json=user("a b c")).headers["x-request-id"]
        assert client.get(f"/v1/admin/accounts/{name}/ledger").status_code == 403
    assert api.put(f"/v1/admin/accounts/{name}/credits",
                   json={"balance": None, "note": "no limit"}).status_code == 200
    first = api.get(f"/v1/admin/accounts/{name}/ledger", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["object"] == "list" and page["account"] == name and page["has_more"]
    lines = page["data"]
    assert [(line["kind"], line["amount"], line["balance_after"], line["note"])
            for line in lines] == [("set", None, None, "no limit"),
                                   ("charge", pytest.approx(-0.006), pytest.approx(12.494),
                                    "")]
    assert lines[1]["request_id"] == rid and page["last_id"] == lines[1]["id"]
    assert page["first_id"] == lines[0]["id"] > lines[1]["id"]
    rest = api.get(f"/v1/admin/accounts/{name}/ledger",
                   params={"after_id": page["last_id"]}).json()
    assert [(line["kind"], line["amount"], line["note"]) for line in rest["data"]] == [
        ("grant", 2.5, "top-up"), ("set", 10.0, "account created")]
    assert rest["has_more"] is False
    assert all(re.match(r"\d{4}-\d\d-\d\dT", line["created_at"]) for line in rest["data"])


@pytest.mark.parametrize("query,status", [("limit=0", 400), ("limit=101", 400),
                                          ("after_id=x", 400), ("after_id=0", 400),
                                          ("kind=grant", 400)])
def test_the_ledger_refuses_what_it_does_not_know(api: httpx.Client, query: str,
                                                  status: int) -> None:
    response = api.get(f"/v1/admin/accounts/default/ledger?{query}")
    assert response.status_code == status and response.json()["type"] == "invalid_request"


def test_the_ledger_of_an_unknown_account(api: httpx.Client) -> None:
    response = api.get("/v1/admin/accounts/no-such-account/ledger")
    assert response.status_code == 404 and "no-such-account" in response.json()["error"]


def test_the_console_is_served_whole_and_needs_no_key(server: ServerProcess) -> None:
    root = httpx.get(server.url + "/")
    assert root.status_code == 307 and root.headers["location"] == "/console"
    page = httpx.get(server.url + "/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert httpx.head(server.url + "/console").status_code == 200
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert "/console/static/app.js" in assets and "/console/static/console.css" in assets
    script = httpx.get(server.url + "/console/static/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    modules = set(re.findall(r'from "\./([a-z]+\.js)"', script.text))
    assert {"api.js", "playground.js", "history.js", "usage.js", "keys.js"} <= modules
    for name in modules:
        assert httpx.get(f"{server.url}/console/static/{name}").status_code == 200, name
    for missing in ("index.html", "nope.js", "..%2Fapp.js", "..%2F..%2Fapp.py"):
        assert httpx.get(f"{server.url}/console/static/{missing}").status_code == 404
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert "/v1/usage" in paths and "/v1/admin/accounts/{name}/ledger" in paths
    assert not any(path == "/" or path.startswith("/console") for path in paths)


def test_a_worker_serves_no_console() -> None:
    client = TestClient(create_app(cast(Runtime, SimpleNamespace(role="worker"))))
    assert client.get("/health").status_code == 200
    for path in ("/", "/console", "/console/static/app.js", "/v1/usage"):
        assert client.get(path, follow_redirects=False).status_code == 404, path
