"""The content policy over HTTP: blocked input and output end FAILED, and cost nothing.

The shared test server blocks the word "forbidden" on input and output, and the pattern
``leak[0-9]+`` on output only (tests/conftest.py).
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests._server import ServerProcess
from tests.api.test_segmind import submit, wait_status
from tests.conftest import new_key, user


def test_blocked_prompt_fails_and_costs_nothing(api: httpx.Client,
                                                server: ServerProcess) -> None:
    key = new_key(api, "policy-input", credits=1.0)
    with server.client(key) as client:
        queued = submit(client, "echo-priced", user("tell me the Forbidden thing"))
        rid = queued["request_id"]
        assert queued["status"] == "FAILED"
        status = client.get(f"/v2/requests/{rid}/status")
        assert status.status_code == 422
        assert status.json()["error"] == (
            "blocked by the content policy: the input matched rule 'test-words'")
        assert status.json()["error_type"] == "content_policy"
        assert client.get(f"/v2/requests/{rid}").status_code == 422
        entry = client.get(f"/v1/requests/{rid}").json()
        assert (entry["status"], entry["credits_deduction"]) == ("FAILED", 0)
        # sync routes answer 400, each in its own shape
        sync = client.post("/v1/echo-priced", json=user("forbidden"))
        assert sync.status_code == 400 and sync.json()["type"] == "content_policy"
        assert sync.headers["x-request-cost"] == "0"
        anthropic = client.post("/v1/messages", json={"model": "echo-priced", "max_tokens": 5,
                                                      **user("forbidden")})
        assert anthropic.status_code == 400
        assert anthropic.json()["error"]["type"] == "invalid_request_error"
        assert "content policy" in anthropic.json()["error"]["message"]
        streamed = client.post("/v1/echo-priced", json={**user("forbidden"), "stream": True})
        assert streamed.status_code == 400
        credits = client.get("/v1/account").json()["credits"]
        assert (credits["balance"], credits["reserved"]) == (1.0, 0.0)


def test_blocked_output_stops_the_generation(api: httpx.Client) -> None:
    rid = submit(api, "echo", user("here is leak42 and more"))["request_id"]
    status = wait_status(api, rid, {"COMPLETED", "FAILED"})
    assert status["status"] == "FAILED"
    assert status["error"] == "blocked by the content policy: the output matched rule " \
                              "'test-output'"
    sync = api.post("/v1/echo", json=user("here is leak42"))
    assert sync.status_code == 400 and "test-output" in sync.json()["error"]


def test_blocked_output_ends_a_stream_with_an_error(api: httpx.Client) -> None:
    with api.stream("POST", "/v1/echo-slow",
                    json={**user("safe words then leak7 and more"), "stream": True}) as resp:
        assert resp.status_code == 200
        events = [json.loads(line[6:]) for line in resp.iter_lines()
                  if line.startswith("data: ")]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert "leak7" not in text and text.startswith("safe words")
    assert events[-1]["type"] == "error"
    assert "content policy" in events[-1]["error"]["message"]


@pytest.mark.parametrize("word", ["forbiddenness", "unforbidden"])
def test_words_match_whole_words_only(api: httpx.Client, word: str) -> None:
    assert api.post("/v1/echo", json=user(word)).status_code == 200
