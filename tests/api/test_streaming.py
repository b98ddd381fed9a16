"""Token streaming: Anthropic's SSE sequence on /v1/messages and /v1/{model}."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import pytest

from tests._server import ServerProcess
from tests.api.test_segmind import submit, wait_status
from tests.conftest import user, words

SEQUENCE_HEAD = ["message_start", "content_block_start"]
SEQUENCE_TAIL = ["content_block_stop", "message_delta", "message_stop"]


def read_events(response: httpx.Response) -> list[tuple[str, dict, float]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:]), time.monotonic()))
    return events


def stream(server: ServerProcess, path: str, body: dict):
    return httpx.stream("POST", server.url + path, json=body, timeout=60,
                        headers={"x-api-key": server.key})


def test_messages_stream_sequence_and_text(server: ServerProcess) -> None:
    body = {"model": "echo-slow", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": words(6)}]}
    with stream(server, "/v1/messages", body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        rid = response.headers["request-id"]
        events = read_events(response)
    names = [name for name, _, _ in events if name != "ping"]
    assert names[:2] == SEQUENCE_HEAD and names[-3:] == SEQUENCE_TAIL
    deltas = [data for name, data, _ in events if name == "content_block_delta"]
    assert len(deltas) == 6  # one per token, sent as the engine made them
    assert "".join(d["delta"]["text"] for d in deltas) == words(6)
    start = events[0][1]["message"]
    assert start["model"] == "echo-slow" and start["usage"]["input_tokens"] == 6
    delta = next(data for name, data, _ in events if name == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 6
    with server.client() as api:
        stored = json.loads(api.get(f"/v2/requests/{rid}").json()["output"])
    assert stored["id"] == start["id"]


def test_tokens_arrive_before_the_message_ends(server: ServerProcess) -> None:
    body = {**user(words(10)), "stream": True}
    with stream(server, "/v1/echo-slow", body) as response:
        events = read_events(response)
    stamps = [t for name, _, t in events if name == "content_block_delta"]
    # 10 tokens at 100 ms each: the first arrives about a second before the last.
    assert stamps[-1] - stamps[0] > 0.5


def test_official_sdk_stream(server: ServerProcess) -> None:
    client = anthropic.Anthropic(api_key=server.key, base_url=server.url, max_retries=0)
    with client.messages.stream(model="claude-3-haiku", max_tokens=20,
                                messages=[{"role": "user", "content": "stream me please"}]) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    assert "".join(pieces) == "stream me please" and len(pieces) == 3
    assert final.content[0].text == "stream me please"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3


def test_ping_while_queued(server: ServerProcess) -> None:
    with server.client() as api:
        blocker = submit(api, "echo-single", user(words(40)))["request_id"]
        wait_status(api, blocker, {"PROCESSING"})
        with stream(server, "/v1/echo-single", {**user("after you"), "stream": True}) as r:
            events = read_events(r)
        api.post(f"/v2/requests/{blocker}/cancel")
    names = [name for name, _, _ in events]
    assert "ping" in names[: names.index("content_block_delta")]
    assert names[-1] == "message_stop"


def test_failure_after_200_is_an_error_event(server: ServerProcess) -> None:
    with stream(server, "/v1/echo-timeout", {**user(words(20)), "stream": True}) as response:
        assert response.status_code == 200
        events = read_events(response)
    name, data, _ = events[-1]
    assert name == "error" and data["error"]["type"] == "timeout_error"
    assert "execution timeout" in data["error"]["message"]


def test_disconnect_cancels_the_job(server: ServerProcess) -> None:
    with stream(server, "/v1/echo-single", {**user(words(100)), "stream": True}) as response:
        rid = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("event: content_block_delta"):
                break
    with server.client() as api:
        status = wait_status(api, rid, {"FAILED", "COMPLETED"}, timeout=10)
    assert status["status"] == "FAILED" and status["error"] == "cancelled"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/echo"])
def test_bad_stream_request_is_a_plain_400(server: ServerProcess, path: str) -> None:
    body = {"model": "echo", "max_tokens": 0, "stream": True,
            "messages": [{"role": "user", "content": "x"}]}
    if path == "/v1/echo":
        body = {**user("x"), "max_tokens": 0, "stream": True}
    response = httpx.post(server.url + path, json=body, headers={"x-api-key": server.key})
    assert response.status_code == 400


def watch(server: ServerProcess, rid: str):
    return httpx.stream("GET", server.url + f"/v2/requests/{rid}/stream", timeout=60,
                        headers={"x-api-key": server.key})


def test_watch_a_queued_job_from_status_to_tokens(server: ServerProcess) -> None:
    with server.client() as api:
        blocker = submit(api, "echo-single", user(words(20)))["request_id"]
        wait_status(api, blocker, {"PROCESSING"})
        rid = submit(api, "echo-single", user("watch me run"))["request_id"]
        with watch(server, rid) as response:
            events = read_events(response)
    statuses = [data["status"] for name, data, _ in events if name == "status"]
    assert statuses == ["QUEUED", "PROCESSING", "COMPLETED"]
    text = "".join(d["delta"]["text"] for n, d, _ in events if n == "content_block_delta")
    assert text == "watch me run"
    assert events[-1][0] == "message_stop"


def test_watch_after_the_end_replays_the_reply(server: ServerProcess) -> None:
    with server.client() as api:
        rid = submit(api, "echo", user("already done"))["request_id"]
        wait_status(api, rid, {"COMPLETED"})
        with watch(server, rid) as response:
            events = read_events(response)
    text = "".join(d["delta"]["text"] for n, d, _ in events if n == "content_block_delta")
    assert text == "already done" and events[-1][0] == "message_stop"


def test_leaving_a_watch_does_not_cancel(server: ServerProcess) -> None:
    with server.client() as api:
        rid = submit(api, "echo-slow", user(words(8)))["request_id"]
        with watch(server, rid) as response:
            for line in response.iter_lines():
                if line.startswith("event: content_block_delta"):
                    break
        assert wait_status(api, rid, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"
        other = server.new_key("watch-other")
    response = httpx.get(server.url + f"/v2/requests/{rid}/stream",
                         headers={"x-api-key": other})
    assert response.status_code == 404
