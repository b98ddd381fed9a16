"""The remote engine's test upstream: llama_cpp.server behind the counting proxy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engines.remote._upstreams import CountingProxy, LlamaCppUpstream


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppUpstream]:
    server = LlamaCppUpstream(Path(tmp_path_factory.mktemp("llama-upstream"))).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(upstream: LlamaCppUpstream) -> Iterator[CountingProxy]:
    with CountingProxy(upstream.root) as proxy:
        yield proxy


def chat_body(max_tokens: int = 8) -> dict[str, object]:
    return {"model": LlamaCppUpstream.model_name, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]}


def test_a_stream_passes_through_and_is_counted(proxy: CountingProxy) -> None:
    body = chat_body()
    events = []
    with httpx.Client(base_url=proxy.url + "/v1", timeout=60, trust_env=False) as client, \
            client.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines()
                  if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert sum("content" in c["choices"][0]["delta"] for c in chunks) == 8
    assert proxy.requests == [body]
    assert proxy.max_inflight == 1 and proxy.inflight == 0 and proxy.rejected == 0


def test_injected_failure_then_the_upstream(proxy: CountingProxy) -> None:
    proxy.fail_next(1, 429, {"Retry-After": "2"})
    with httpx.Client(base_url=proxy.url + "/v1", timeout=60, trust_env=False) as client:
        refused = client.post("/chat/completions", json=chat_body())
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        body = {**chat_body(4), "stream": False}
        answered = client.post("/chat/completions", json=body)
        assert answered.status_code == 200, answered.text
        assert answered.json()["usage"]["completion_tokens"] == 4
        assert client.get("/models").json()["data"][0]["id"] == LlamaCppUpstream.model_name
    assert len(proxy.requests) == 2 and proxy.rejected == 1 and proxy.inflight == 0


def test_an_unreachable_upstream_is_a_502() -> None:
    with CountingProxy("http://127.0.0.1:9") as proxy:
        response = httpx.post(proxy.url + "/v1/chat/completions", json=chat_body(),
                              trust_env=False)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_gateway"
    assert proxy.inflight == 0 and len(proxy.requests) == 1
