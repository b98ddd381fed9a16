"""The Segmind surface over real HTTP against a live server: happy paths and every error."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests._server import ServerProcess
from tests.conftest import user, words

MESSAGE_KEYS = {"id", "type", "role", "content", "model", "stop_reason", "stop_sequence",
                "usage"}


def submit(api: httpx.Client, model: str, body: dict, **kw) -> dict:
    response = api.post(f"/v2/{model}", json=body, **kw)
    assert response.status_code == 200, response.text
    return response.json()


def wait_status(api: httpx.Client, request_id: str, want: set[str],
                timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    params: dict = {}
    while time.monotonic() < deadline:
        body = api.get(f"/v2/requests/{request_id}/status", params=params).json()
        if body["status"] in want:
            return body
        params = {"wait": 5}  # hold until the status moves on from this one
    raise AssertionError(f"{request_id} never reached {want}")


# -- health ----------------------------------------------------------------------------------

def test_health_and_ready_need_no_key(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.headers["x-request-id"]


# -- sync ------------------------------------------------------------------------------------

def test_sync_returns_anthropic_message_with_requested_slug(api: httpx.Client) -> None:
    response = api.post("/v1/claude-3-haiku", json={
        "instruction": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    })
    assert response.status_code == 200
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["model"] == "claude-3-haiku"
    assert body["content"] == [{"type": "text", "text": "What is the capital of France?"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"] == {"input_tokens": 11, "output_tokens": 6,
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                             "service_tier": "standard"}
    assert response.headers["x-request-id"]


def test_sync_request_id_finds_the_job(api: httpx.Client) -> None:
    response = api.post("/v1/echo", json=user("find me"))
    rid = response.headers["x-request-id"]
    result = api.get(f"/v2/requests/{rid}")
    assert result.status_code == 200
    assert json.loads(result.json()["output"]) == response.json()


def test_sync_max_tokens_and_stop_sequences(api: httpx.Client) -> None:
    body = api.post("/v1/echo", json={**user("one two three four"), "max_tokens": 2}).json()
    assert body["content"][0]["text"] == "one two"
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] == 2
    body = api.post("/v1/echo", json={**user("one two STOP three"),
                                      "stop_sequences": ["STOP"]}).json()
    assert body["content"][0]["text"] == "one two "
    assert body["stop_reason"] == "stop_sequence" and body["stop_sequence"] == "STOP"


def test_prompt_shorthand_and_system_blocks(api: httpx.Client) -> None:
    body = api.post("/v1/echo", json={"prompt": "short hand",
                                      "system": [{"type": "text", "text": "be brief"}]}).json()
    assert body["content"][0]["text"] == "short hand"
    assert body["usage"]["input_tokens"] == 4


def test_sync_past_timeout_gives_504_and_job_finishes(api: httpx.Client) -> None:
    # 30 words at 100 ms each outlive the 2 s sync timeout.
    response = api.post("/v1/echo-slow", json=user(words(30)))
    assert response.status_code == 504
    body = response.json()
    rid = body["request_id"]
    assert body["status"] in ("QUEUED", "PROCESSING")
    assert body["status_url"].endswith(f"/v2/requests/{rid}/status")
    assert body["response_url"].endswith(f"/v2/requests/{rid}")
    assert body["status_url"].startswith("http://")
    final = wait_status(api, rid, {"COMPLETED", "FAILED"})
    assert final["status"] == "COMPLETED"
    result = api.get(body["response_url"])
    assert result.status_code == 200
    assert json.loads(result.json()["output"])["content"][0]["text"] == words(30)


# -- async queue -----------------------------------------------------------------------------

def test_submit_poll_result(api: httpx.Client, server: ServerProcess) -> None:
    sub = submit(api, "claude-3-haiku", user("queued hello"))
    rid = sub["request_id"]
    assert sub["status"] == "QUEUED"
    assert sub["queue_position"] >= 1
    base = server.url
    assert sub["status_url"] == f"{base}/v2/requests/{rid}/status"
    assert sub["response_url"] == f"{base}/v2/requests/{rid}"
    assert sub["cancel_url"] == f"{base}/v2/requests/{rid}/cancel"
    status = wait_status(api, rid, {"COMPLETED"})
    assert status["created_at"] <= status["started_at"] <= status["completed_at"]
    result = api.get(sub["response_url"])
    assert result.status_code == 200
    body = result.json()
    assert body["status"] == "COMPLETED" and body["request_id"] == rid
    assert isinstance(body["output"], str)
    message = json.loads(body["output"])
    assert message["content"][0]["text"] == "queued hello"
    assert message["model"] == "claude-3-haiku"
    metrics = body["metrics"]
    assert metrics["input_tokens"] == 2 and metrics["output_tokens"] == 2
    assert metrics["queue_ms"] >= 0 and metrics["inference_ms"] >= 0
    assert metrics["cost"] == pytest.approx((2 * 0.25 + 2 * 1.25) / 1e6)


def test_pending_result_is_202_then_200(api: httpx.Client) -> None:
    rid = submit(api, "echo-slow", user(words(10)))["request_id"]
    pending = api.get(f"/v2/requests/{rid}")
    assert pending.status_code == 202
    assert pending.json()["status"] in ("QUEUED", "PROCESSING")
    wait_status(api, rid, {"COMPLETED"})
    assert api.get(f"/v2/requests/{rid}").status_code == 200


def test_long_poll_returns_on_change_not_at_timeout(api: httpx.Client) -> None:
    rid = submit(api, "echo-slow", user(words(5)))["request_id"]
    wait_status(api, rid, {"PROCESSING", "COMPLETED"})
    started = time.monotonic()
    body = api.get(f"/v2/requests/{rid}/status", params={"wait": 30}).json()
    assert body["status"] == "COMPLETED"
    # 5 words at 100 ms: the poll ends with the job, far before its 30 s hold.
    assert time.monotonic() - started < 25


@pytest.mark.parametrize("wait", ["-1", "61", "soon"])
def test_long_poll_bad_wait_is_400(api: httpx.Client, wait: str) -> None:
    rid = submit(api, "echo", user("x"))["request_id"]
    response = api.get(f"/v2/requests/{rid}/status", params={"wait": wait})
    assert response.status_code == 400
    assert "wait" in response.json()["error"]


def test_cancel_queued_and_processing(api: httpx.Client) -> None:
    first = submit(api, "echo-single", user(words(60)))["request_id"]
    second = submit(api, "echo-single", user(words(60)))["request_id"]
    wait_status(api, first, {"PROCESSING"})
    queued = api.get(f"/v2/requests/{second}/status").json()
    assert queued["status"] == "QUEUED" and queued["queue_position"] == 1

    cancelled = api.post(f"/v2/requests/{second}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "FAILED" and cancelled.json()["error"] == "cancelled"

    cancelled = api.post(f"/v2/requests/{first}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "FAILED"

    for rid in (first, second):
        status = api.get(f"/v2/requests/{rid}/status")
        assert status.status_code == 422
        assert status.json()["status"] == "FAILED" and status.json()["error"] == "cancelled"
        result = api.get(f"/v2/requests/{rid}")
        assert result.status_code == 422 and result.json()["error"] == "cancelled"
        again = api.post(f"/v2/requests/{rid}/cancel")
        assert again.status_code == 409
        assert "already ended" in again.json()["error"]

    # The single slot was freed by the cancel: a new job runs at once.
    quick = submit(api, "echo-single", user("after cancel"))["request_id"]
    assert wait_status(api, quick, {"COMPLETED", "FAILED"}, timeout=10)["status"] == "COMPLETED"


def test_cancel_completed_is_409(api: httpx.Client) -> None:
    rid = submit(api, "echo", user("done"))["request_id"]
    wait_status(api, rid, {"COMPLETED"})
    response = api.post(f"/v2/requests/{rid}/cancel")
    assert response.status_code == 409


def test_execution_timeout_fails_job(api: httpx.Client) -> None:
    rid = submit(api, "echo-timeout", user(words(20)))["request_id"]
    status = wait_status(api, rid, {"COMPLETED", "FAILED"})
    assert status["status"] == "FAILED"
    assert "execution timeout" in status["error"]
    sync = api.post("/v1/echo-timeout", json=user(words(20)))
    assert sync.status_code == 504
    assert sync.json()["status"] == "FAILED" and "execution timeout" in sync.json()["error"]


# -- idempotency -----------------------------------------------------------------------------

def test_idempotency_key_same_body_same_request(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "idem-same-1"}
    a = submit(api, "echo", user("once only"), headers=headers)
    b = submit(api, "echo", user("once only"), headers=headers)
    assert a["request_id"] == b["request_id"]
    other = submit(api, "echo", user("once only"), headers={"Idempotency-Key": "idem-same-2"})
    assert other["request_id"] != a["request_id"]


def test_idempotency_key_different_body_is_422(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "idem-conflict-1"}
    first = submit(api, "echo", user("first body"), headers=headers)
    response = api.post("/v2/echo", json=user("second body"), headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert "Idempotency-Key" in body["error"]
    assert body["request_id"] == first["request_id"]


def test_idempotency_keys_are_per_account(api: httpx.Client, server: ServerProcess) -> None:
    headers = {"Idempotency-Key": "idem-shared"}
    mine = submit(api, "echo", user("mine"), headers=headers)
    with server.client(server.new_key("idem-other")) as other:
        theirs = submit(other, "echo", user("theirs"), headers=headers)
    assert theirs["request_id"] != mine["request_id"]


# -- auth and ownership ----------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"x-api-key": "sk-nope-000000000000"},
                                     {"Authorization": "Bearer sk-nope-000000000000"},
                                     {"Authorization": "Basic abc"}])
def test_bad_or_missing_key_is_401(server: ServerProcess, headers: dict) -> None:
    for method, path in [("POST", "/v1/echo"), ("POST", "/v2/echo"), ("GET", "/v1/models"),
                         ("GET", "/v2/requests/x/status"), ("GET", "/v2/requests/x"),
                         ("POST", "/v2/requests/x/cancel")]:
        response = httpx.request(method, server.url + path, headers=headers, json=user("x"))
        assert response.status_code == 401, (method, path)
        body = response.json()
        assert body["type"] == "authentication_error"
        assert "API key" in body["error"]
        assert body["request_id"] == response.headers["x-request-id"]


def test_bearer_key_works(server: ServerProcess) -> None:
    response = httpx.post(server.url + "/v1/echo", json=user("bearer"),
                          headers={"Authorization": f"Bearer {server.key}"})
    assert response.status_code == 200


def test_revoked_key_is_401(server: ServerProcess) -> None:
    key = server.new_key("revoke-me")
    with server.client(key) as client:
        assert client.post("/v1/echo", json=user("ok")).status_code == 200
        listing = server.cli("keys", "list").stdout
        key_id = next(line.split()[0] for line in listing.splitlines()
                      if "revoke-me" in line)
        done = server.cli("keys", "revoke", key_id)
        assert done.returncode == 0, done.stderr
        response = client.post("/v1/echo", json=user("no longer"))
        assert response.status_code == 401
        assert "revoked" in response.json()["error"]


def test_other_accounts_requests_are_404(api: httpx.Client, server: ServerProcess) -> None:
    rid = submit(api, "echo", user("private"))["request_id"]
    wait_status(api, rid, {"COMPLETED"})
    with server.client(server.new_key("intruder")) as other:
        for method, path in [("GET", f"/v2/requests/{rid}/status"),
                             ("GET", f"/v2/requests/{rid}"),
                             ("POST", f"/v2/requests/{rid}/cancel")]:
            response = other.request(method, path)
            assert response.status_code == 404, path
            assert "unknown request id" in response.json()["error"]
    assert api.get(f"/v2/requests/{rid}").status_code == 200


def test_unknown_request_is_404(api: httpx.Client) -> None:
    for method, path in [("GET", "/v2/requests/nope/status"), ("GET", "/v2/requests/nope"),
                         ("POST", "/v2/requests/nope/cancel")]:
        response = api.request(method, path)
        assert response.status_code == 404
        assert response.json()["type"] == "not_found"


# -- models ----------------------------------------------------------------------------------

def test_models_list(api: httpx.Client) -> None:
    data = api.get("/v1/models").json()["data"]
    echo = next(m for m in data if m["slug"] == "echo")
    assert echo["aliases"] == ["claude-3-haiku"]
    assert echo["context_length"] == 8192
    assert echo["pricing"] == {"currency": "USD", "input_per_million": 0.25,
                               "output_per_million": 1.25, "cached_input_per_million": 0.25}
    assert echo["sampling"] == {"temperature": 1.0, "top_p": 1.0, "top_k": 40, "min_p": 0.0,
                                "repeat_penalty": 1.0}
    assert next(m for m in data if m["slug"] == "echo-vision")["capabilities"]["vision"]


def test_unknown_model_is_404(api: httpx.Client) -> None:
    for path in ("/v1/gpt-9", "/v2/gpt-9"):
        response = api.post(path, json=user("x"))
        assert response.status_code == 404
        assert "unknown model 'gpt-9'" in response.json()["error"]


def test_unknown_route_is_404(api: httpx.Client) -> None:
    response = api.get("/v3/things")
    assert response.status_code == 404
    assert response.json()["type"] == "not_found"
