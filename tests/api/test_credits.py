"""Credits over HTTP: reservation at admission, 406, settlement, cost headers, the account."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests._server import ServerProcess
from tests.api.test_segmind import submit
from tests.conftest import new_key, user

# echo-priced: 0.001 USD a token in and out; "a b c" is 3 tokens in, 3 out.
PROMPT = user("a b c")
COST = 0.006
WORST = 0.013  # 3 input tokens + max_tokens 10


def settled(client: httpx.Client, request_id: str, timeout: float = 10) -> dict:
    """The request's history entry once it has been settled."""
    deadline = time.monotonic() + timeout
    while (entry := client.get(f"/v1/requests/{request_id}").json())["completed_at"] is None:
        assert time.monotonic() < deadline, entry
        time.sleep(0.05)
    return entry


def assert_charged(client: httpx.Client, entry: dict, cost: float,
                   start: float = 1.0) -> None:
    """The request was charged ``cost``, and nothing else is held for it."""
    assert entry["credits_deduction"] == pytest.approx(cost)
    credits = account(client)["credits"]
    assert credits["balance"] == pytest.approx(start - cost) and credits["reserved"] == 0


def account(client: httpx.Client) -> dict:
    response = client.get("/v1/account")
    assert response.status_code == 200, response.text
    return response.json()


def test_cost_is_reported_and_charged(api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "credits-basic", credits=1.0)
    with server.client(key) as client:
        before = account(client)
        assert before["credits"] == {"currency": "USD", "unlimited": False, "balance": 1.0,
                                     "reserved": 0.0, "available": 1.0}
        response = client.post("/v1/echo-priced", json=PROMPT)
        assert response.status_code == 200
        assert float(response.headers["x-request-cost"]) == pytest.approx(COST)
        rid = response.headers["x-request-id"]
        result = client.get(f"/v2/requests/{rid}")
        assert result.json()["metrics"]["cost"] == pytest.approx(COST)
        assert float(result.headers["x-request-cost"]) == pytest.approx(COST)
        status = client.get(f"/v2/requests/{rid}/status")
        assert float(status.headers["x-request-cost"]) == pytest.approx(COST)
        # the Anthropic and OpenAI surfaces say it too
        message = client.post("/v1/messages", json={"model": "echo-priced", "max_tokens": 10,
                                                    **PROMPT})
        assert float(message.headers["x-request-cost"]) == pytest.approx(COST)
        chat = client.post("/v1/chat/completions", json={"model": "echo-priced", **PROMPT})
        assert float(chat.headers["x-request-cost"]) == pytest.approx(COST)
        after = account(client)["credits"]
        assert after["balance"] == pytest.approx(1.0 - 3 * COST)
        assert after["reserved"] == 0.0


def test_insufficient_credits_is_406_on_every_surface(api: httpx.Client,
                                                      server: ServerProcess) -> None:
    key = new_key(api, "credits-poor", credits=0.01)
    with server.client(key) as client:
        refused = client.post("/v2/echo-priced", json=PROMPT)
        assert refused.status_code == 406
        body = refused.json()
        assert body["type"] == "insufficient_credits"
        assert "may cost up to $0.013000" in body["error"] and "$0.010000" in body["error"]
        assert "lower max_tokens" in body["error"]
        anthropic = client.post("/v1/messages", json={"model": "echo-priced",
                                                      "max_tokens": 10, **PROMPT})
        assert anthropic.status_code == 406
        assert anthropic.json()["error"]["type"] == "billing_error"
        # a smaller worst case fits
        fits = client.post("/v1/echo-priced", json={**PROMPT, "max_tokens": 5})
        assert fits.status_code == 200
        assert account(client)["credits"]["balance"] == pytest.approx(0.01 - COST)
        # nothing was queued for the refused requests
        assert client.get("/v1/requests", params={"status": "QUEUED"}).json()["data"] == []


def test_concurrent_requests_racing_a_small_balance(api: httpx.Client,
                                                    server: ServerProcess) -> None:
    start = 0.05  # room for three worst cases at a time
    key = new_key(api, "credits-race", credits=start)

    def one(_: int) -> httpx.Response:
        with server.client(key) as client:
            return client.post("/v1/echo-priced", json=PROMPT)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(one, range(24)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 406}, codes
    assert codes.count(200) >= 3 and codes.count(406) >= 1
    charged = sum(float(r.headers["x-request-cost"]) for r in responses if r.status_code == 200)
    with server.client(key) as client:
        credits = account(client)["credits"]
        history = client.get("/v1/requests", params={"limit": 100}).json()["data"]
    assert credits["balance"] >= 0 and credits["reserved"] == 0
    assert credits["balance"] == pytest.approx(start - charged)
    assert charged == pytest.approx(COST * codes.count(200))
    assert sum(e["credits_deduction"] for e in history) == pytest.approx(charged)
    assert len(history) == codes.count(200)  # a 406 leaves no request behind


def test_a_cancel_while_running_charges_only_what_was_generated(
        api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "credits-cancel", credits=1.0)
    with server.client(key) as client:
        rid = submit(client, "echo-priced", user(" ".join(["w"] * 10)))["request_id"]
        assert account(client)["credits"]["reserved"] == pytest.approx(0.02)
        with client.stream("GET", f"/v2/requests/{rid}/stream") as events:
            for line in events.iter_lines():  # watch until the first text is made
                if line.startswith("event: content_block_delta"):
                    break
        assert client.post(f"/v2/requests/{rid}/cancel").status_code == 200
        entry = settled(client, rid)
        assert entry["status"] == "FAILED" and entry["error"] == "cancelled"
        generated = entry["output_tokens"]
        assert 1 <= generated < 10
        cost = (10 + generated) * 0.001
        assert_charged(client, entry, cost)


def test_a_failed_request_costs_nothing(api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "credits-failed", credits=1.0)
    with server.client(key) as client:
        response = client.post("/v1/echo-timeout", json=user(" ".join(["w"] * 20)))
        assert response.status_code == 504
        rid = response.json()["request_id"]
        entry = settled(client, rid)
        assert (entry["status"], entry["credits_deduction"]) == ("FAILED", 0.0)
        assert account(client)["credits"] == {**account(client)["credits"], "balance": 1.0,
                                              "reserved": 0.0}


def test_admin_credits_api_and_scope(api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "credits-admin", credits=0.0)
    with server.client(key) as client:
        assert client.post("/v1/echo-priced", json=PROMPT).status_code == 406
        # an ordinary key cannot give itself credits
        denied = client.post("/v1/admin/accounts/credits-admin/credits", json={"amount": 5})
        assert denied.status_code == 403 and "admin key" in denied.json()["error"]
    added = api.post("/v1/admin/accounts/credits-admin/credits",
                     json={"amount": 0.5, "note": "top-up"})
    assert added.status_code == 200 and added.json()["credits"]["balance"] == 0.5
    bad = api.post("/v1/admin/accounts/credits-admin/credits", json={"amount": -1})
    assert bad.status_code == 400 and "below zero" in bad.json()["error"]
    wrong = api.post("/v1/admin/accounts/credits-admin/credits", json={"amount": "lots"})
    assert wrong.status_code == 400 and "amount" in wrong.json()["error"]
    with server.client(key) as client:
        assert client.post("/v1/echo-priced", json=PROMPT).status_code == 200
    unlimited = api.put("/v1/admin/accounts/credits-admin/credits", json={"balance": None})
    assert unlimited.json()["credits"]["unlimited"] is True
    assert api.get("/v1/admin/accounts/nobody").status_code == 404
    names = [a["name"] for a in api.get("/v1/admin/accounts").json()["data"]]
    assert "credits-admin" in names and "default" in names
