"""Admission over HTTP: what is checked before what, and what a refused or replayed request
costs (nothing), cancelled streams (what they generated), requests of a removed model."""

from __future__ import annotations

import signal
import sqlite3
import time

import httpx
import pytest

from tests._server import ServerProcess
from tests.api.test_credits import account, assert_charged, settled
from tests.api.test_segmind import submit, wait_status
from tests.conftest import new_key, user, words

# Results expire after 1 s, so that a replay can come after its job is gone.
SHORT_LIVED = """
[server]
result_ttl = 1

[[models]]
slug = "echo-priced"      # 0.001 USD a token, in and out
price_input = 1000
price_output = 1000
default_max_tokens = 10
"""


def charges(server: ServerProcess, request_id: str) -> int:
    with sqlite3.connect(server.data_dir / "stratus.db") as db:
        return db.execute("SELECT COUNT(*) FROM credit_ledger WHERE kind = 'charge' AND "
                          "request_id = ?", (request_id,)).fetchone()[0]


def test_replay_after_the_result_expired_is_the_same_request_never_a_new_charge(
        make_server) -> None:
    server = make_server(SHORT_LIVED)
    with server.client() as admin:
        key = new_key(admin, "replay-expired", credits=1.0)
    headers = {"idempotency-key": "order-42"}
    with server.client(key) as client:
        first = submit(client, "echo-priced", user("a b c"), headers=headers)["request_id"]
        wait_status(client, first, {"COMPLETED"})
        balance = account(client)["credits"]["balance"]
        time.sleep(1.5)
        assert client.get(f"/v2/requests/{first}").status_code == 404  # the result expired
        replay = client.post("/v2/echo-priced", json=user("a b c"), headers=headers)
        assert replay.status_code == 200, replay.text
        assert replay.json()["request_id"] == first
        assert replay.json()["status"] == "COMPLETED"  # from the request's history
        # a sync replay cannot give the answer any more: 404 naming the request
        sync = client.post("/v1/echo-priced", json=user("a b c"), headers=headers)
        assert sync.status_code == 404 and sync.json()["request_id"] == first
        assert "expired" in sync.json()["error"]
        assert account(client)["credits"]["balance"] == balance
        assert [r["request_id"] for r in client.get("/v1/requests").json()["data"]] == [first]
    assert charges(server, first) == 1


def test_idempotent_retry_of_an_in_flight_request_is_not_refused(
        api: httpx.Client, server: ServerProcess) -> None:
    # the balance covers one request's worst case (0.033 USD) and the key one request a minute
    key = new_key(api, "replay-tight", credits=0.04, requests_per_minute=1)
    headers = {"idempotency-key": "retry-me"}
    body = user("a b c " + words(20))
    with server.client(key) as client:
        first = submit(client, "echo-priced", body, headers=headers)["request_id"]
        for _ in range(2):
            again = client.post("/v2/echo-priced", json=body, headers=headers)
            assert again.status_code == 200, again.text  # neither 406 nor 429
            assert again.json()["request_id"] == first
        other = client.post("/v2/echo-priced", json=user("another"))
        assert other.status_code == 429  # a new request still meets the limit
        wait_status(client, first, {"COMPLETED"})


def test_refused_requests_do_not_use_up_the_rate_limit(api: httpx.Client,
                                                       server: ServerProcess) -> None:
    key = new_key(api, "limits-refused", credits=0.01, requests_per_minute=1)
    with server.client(key) as client:
        for _ in range(3):  # worst case 0.013 USD > 0.01: refused for credits
            refused = client.post("/v2/echo-priced", json=user("a b c"))
            assert refused.status_code == 406
        for _ in range(2):
            invalid = client.post("/v2/echo-priced", json={**user("a b c"), "max_tokens": 0})
            assert invalid.status_code == 400
        ok = client.post("/v2/echo-priced", json={**user("a b c"), "max_tokens": 2})
        assert ok.status_code == 200, ok.text
        assert ok.headers["x-ratelimit-remaining-requests"] == "0"
        assert client.post("/v2/echo-priced", json=user("a")).status_code == 429


def test_a_rate_limited_key_is_refused_before_its_body_is_worked_on(
        api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "limits-first", requests_per_minute=1)
    with server.client(key) as client:
        assert client.post("/v2/echo", json=user("one")).status_code == 200
        # an image on a model without vision is a 400 once the body is normalized, but the
        # key has no request left: it is refused before that work is done
        image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
        refused = client.post("/v2/echo", json={"messages": [
            {"role": "user", "content": [image, {"type": "text", "text": "what is this"}]}]})
        assert refused.status_code == 429, refused.text


def test_an_account_without_credits_is_refused_before_its_body_is_worked_on(
        api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "credits-first", credits=0)
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    with server.client(key) as client:
        refused = client.post("/v2/echo-priced", json={"messages": [
            {"role": "user", "content": [image, {"type": "text", "text": "what is this"}]}]})
        assert refused.status_code == 406, refused.text
        assert "insufficient credits" in refused.json()["error"]


def test_count_tokens_is_rate_limited(api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "limits-count", requests_per_minute=2)
    body = {"model": "echo", "messages": [{"role": "user", "content": "a b c"}]}
    with server.client(key) as client:
        first = client.post("/v1/messages/count_tokens", json=body)
        assert first.status_code == 200 and first.json() == {"input_tokens": 3}
        assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
        assert client.post("/v1/messages/count_tokens", json=body).status_code == 200
        refused = client.post("/v1/messages/count_tokens", json=body)
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert account(client)["credits"]["unlimited"]


def test_lone_surrogate_is_refused_and_not_charged(api: httpx.Client,
                                                   server: ServerProcess) -> None:
    key = new_key(api, "surrogate", credits=1.0)
    raw = b'{"model": "echo-priced", "max_tokens": 5, "messages": [{"role": "user", ' \
          b'"content": "hi \\ud800 there"}]}'
    with server.client(key) as client:
        for path in ("/v1/echo-priced", "/v1/messages", "/v1/chat/completions"):
            body = raw if path != "/v1/echo-priced" else raw.replace(
                b'"model": "echo-priced", ', b"")
            response = client.post(path, content=body,
                                   headers={"content-type": "application/json"})
            assert response.status_code == 400, (path, response.text)
            assert "surrogate" in response.text and "messages[0].content" in response.text
        assert account(client)["credits"]["balance"] == 1.0
        assert client.get("/v1/requests").json()["data"] == []


def test_a_cancelled_stream_is_charged_for_what_it_generated(
        api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "stream-cancel", credits=1.0)  # worst case 0.6 USD
    body = {**user(words(300)), "max_tokens": 300, "stream": True}
    with server.client(key) as client, client.stream("POST", "/v1/echo-priced",
                                                     json=body) as response:
        rid = response.headers["x-request-id"]
        deltas = 0
        for line in response.iter_lines():
            if line.startswith("event: content_block_delta"):
                deltas += 1
                if deltas == 9:
                    break  # read 9 deltas, then go away
    with server.client(key) as client:
        status = wait_status(client, rid, {"FAILED", "COMPLETED"}, timeout=10)
        assert status["status"] == "FAILED" and status["error"] == "cancelled"
        entry = settled(client, rid)
        assert entry["status"] == "FAILED" and entry["input_tokens"] == 300
        generated = entry["output_tokens"]
        assert 9 <= generated < 300
        cost = (300 + generated) * 0.001
        assert_charged(client, entry, cost)
        assert float(client.get(f"/v2/requests/{rid}/status").headers["x-request-cost"]) == (
            pytest.approx(cost))


def test_a_job_cancelled_while_queued_costs_nothing(api: httpx.Client,
                                                    server: ServerProcess) -> None:
    key = new_key(api, "queued-cancel", credits=1.0)
    with server.client(key) as client:
        running = [submit(client, "echo-single", user(words(40)))["request_id"]
                   for _ in range(2)]
        queued = running[1]
        assert client.post(f"/v2/requests/{queued}/cancel").status_code == 200
        entry = client.get(f"/v1/requests/{queued}").json()
        assert entry["status"] == "FAILED" and entry["credits_deduction"] == 0
        client.post(f"/v2/requests/{running[0]}/cancel")


REMOVED_MODEL = """
[[models]]
slug = "echo"

[[models]]
slug = "echo-going"
batch_slots = 1
price_input = 1000
price_output = 1000
[models.options]
delay_ms = 200
"""


def test_queued_jobs_of_a_removed_model_fail_and_release_their_credits(make_server) -> None:
    server = make_server(REMOVED_MODEL)
    with server.client() as admin:
        key = new_key(admin, "removed-model", credits=1.0)
    with server.client(key) as client:
        ids = [submit(client, "echo-going", {**user(words(20)), "max_tokens": 20})["request_id"]
               for _ in range(3)]
        assert account(client)["credits"]["reserved"] > 0
    server.kill()
    kept = REMOVED_MODEL.split("[[models]]\nslug = \"echo-going\"")[0]
    restarted = make_server(kept, data_dir=server.data_dir)
    with restarted.client(key) as client:
        for rid in ids:
            status = client.get(f"/v2/requests/{rid}/status")
            assert status.status_code == 422
            assert "no longer served" in status.json()["error"]
            assert client.get(f"/v1/requests/{rid}").json()["credits_deduction"] == 0
        credits = account(client)["credits"]
        assert credits["reserved"] == 0 and credits["balance"] == 1.0


DRAIN = """
[server]
shutdown_grace = {grace}

[[models]]
slug = "echo-slow"
batch_slots = 1
[models.options]
delay_ms = 100
"""


def test_a_draining_server_still_answers_503_until_its_jobs_end(make_server) -> None:
    server = make_server(DRAIN.format(grace=10))
    with server.client() as api:
        running = submit(api, "echo-slow", user(words(30)))["request_id"]
        wait_status(api, running, {"PROCESSING"})
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while api.get("/ready").status_code == 200:  # until the signal is handled
            assert time.monotonic() < deadline, "server stayed ready after SIGTERM"
            time.sleep(0.02)
        seen_ready = seen_submit = 0
        while server.proc.poll() is None:
            try:
                ready = api.get("/ready")
                refused = api.post("/v2/echo-slow", json=user("too late"))
            except httpx.TransportError:
                break  # the drain is over and the listener closed
            assert ready.status_code == 503 and ready.json()["reason"] == "shutting down"
            assert refused.status_code == 503 and refused.headers["retry-after"]
            seen_ready, seen_submit = seen_ready + 1, seen_submit + 1
            time.sleep(0.1)
        assert seen_ready >= 3 and seen_submit >= 3  # answered all through the drain
    server.proc.wait(timeout=30)
    restarted = make_server(DRAIN.format(grace=10), data_dir=server.data_dir)
    with restarted.client() as api:
        assert api.get(f"/v2/requests/{running}/status").json()["status"] == "COMPLETED"


def test_a_short_grace_period_never_hangs_shutdown_with_a_stream_open(make_server) -> None:
    server = make_server(DRAIN.format(grace=0.5))
    with httpx.stream("POST", server.url + "/v1/echo-slow", timeout=60,
                      json={**user(words(200)), "stream": True},
                      headers={"x-api-key": server.key}) as response:
        for line in response.iter_lines():
            if line.startswith("event: content_block_delta"):
                break
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)


def test_a_second_signal_stops_at_once_and_hands_the_job_back(make_server) -> None:
    server = make_server(DRAIN.format(grace=60))
    with server.client() as api:
        running = submit(api, "echo-slow", user(words(600)))["request_id"]  # a minute's work
        wait_status(api, running, {"PROCESSING"})
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while api.get("/ready").status_code == 200:  # the drain has begun
            assert time.monotonic() < deadline, "server stayed ready after SIGTERM"
            time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) in (0, -signal.SIGTERM)  # not the minute's grace
    with sqlite3.connect(server.data_dir / "stratus.db") as db:
        status, attempts = db.execute("SELECT status, attempts FROM jobs WHERE id = ?",
                                      (running,)).fetchone()
    assert (status, attempts) == ("QUEUED", 0)  # handed back without spending an attempt
