"""``--log-format json``: one JSON object a line, with a line per request that says who
(the key's id, never the key), where, and what it came to."""

from __future__ import annotations

import json
import time

from tests.conftest import new_key, user

CONFIG = """
[[models]]
slug = "echo"
price_input = 1000
price_output = 1000
"""


def test_each_request_is_one_json_line(make_server) -> None:
    server = make_server(CONFIG, extra_args=("--log-format", "json", "--log-level", "info"))
    with server.client() as admin:
        key = new_key(admin, "logged")
    with server.client(key) as api:
        answered = api.post("/v1/echo", json=user("one two"))
        missing = api.get("/v2/requests/nope/status")
        streamed = api.post("/v1/messages", json={**user("three four five"), "model": "echo",
                                                  "max_tokens": 10, "stream": True})
        chunks = api.post("/v1/chat/completions", json={**user("six"), "model": "echo",
                                                        "stream": True})
    assert answered.status_code == 200 and missing.status_code == 404
    assert "message_stop" in streamed.text and "[DONE]" in chunks.text
    rid = answered.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in server.log().splitlines()
                 if line.startswith("{")]
        requests = {line.get("request_id"): line for line in lines
                    if line["logger"] == "stratus.requests"}
        if rid in requests and len(requests) >= 5:
            break
        time.sleep(0.1)
    line = requests[rid]
    assert line["level"] == "info" and line["ts"].endswith("Z")
    assert (line["surface"], line["method"], line["path"], line["model"], line["status"]) == (
        "segmind", "POST", "/v1/echo", "echo", 200)
    assert line["key_id"].startswith("key_") and line["latency_ms"] > 0
    assert (line["input_tokens"], line["output_tokens"]) == (2, 2)
    assert line["cost_usd"] == 0.004
    streamed_line = requests[streamed.headers["x-request-id"]]
    assert (streamed_line["surface"], streamed_line["input_tokens"],
            streamed_line["output_tokens"], streamed_line["cost_usd"]) == (
        "anthropic", 3, 3, 0.006)  # a stream's tokens, noted as it ended
    chunks_line = requests[chunks.headers["x-request-id"]]
    assert (chunks_line["output_tokens"], chunks_line["cost_usd"]) == (1, 0.002)
    refused = next(v for v in requests.values() if v["status"] == 404)
    assert refused["input_tokens"] is None and refused["key_id"] == line["key_id"]
    assert key not in server.log()  # the key's id is logged, never the key
    assert not [x for x in lines if x["logger"] == "uvicorn.access"]  # one line, not two
