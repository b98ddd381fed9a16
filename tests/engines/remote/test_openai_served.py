"""A ``stratus serve`` whose models are served by a real OpenAI-compatible upstream
(llama-cpp-python's server on gemma-3-270m), seen through a proxy that counts what reaches it.
"""

from __future__ import annotations

import concurrent.futures
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests._server import ServerProcess
from tests.conftest import eventually, new_key
from tests.engines.remote._upstreams import CountingProxy, LlamaCppUpstream
from tests.images import image_b64

CONFIG = """
[server]
sync_timeout = 60

[[models]]
slug = "gemma-remote"
engine = "openai"
context_length = 2048
max_output_tokens = 1024
default_max_tokens = 16
price_input = 1000        # 0.001 USD a token, in and out
price_output = 1000
[models.options]
base_url = "{url}/v1"
model = "gemma-3-270m"
max_concurrency = 2
tokenizer = "llama-cpp-python"
cooldown_after = 2
cooldown = 0.5
max_cooldown = 1

[[models]]
slug = "gemma-pair"       # counted by estimate: admission never waits for the upstream
engine = "openai"
context_length = 2048
[models.options]
base_url = "{url}/v1"
model = "gemma-3-270m"
max_concurrency = 2

[[models]]
slug = "gemma-vision"     # the same upstream, said to see images
engine = "openai"
context_length = 2048
[models.capabilities]
vision = true
[models.options]
base_url = "{url}/v1"
model = "gemma-3-270m"
max_concurrency = 1
"""
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppUpstream]:
    server = LlamaCppUpstream(Path(tmp_path_factory.mktemp("upstream"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(upstream: LlamaCppUpstream) -> Iterator[CountingProxy]:
    with CountingProxy(upstream.root) as counting:
        yield counting


@pytest.fixture(scope="module")
def served(proxy: CountingProxy, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("openai-served"),
                         CONFIG.format(url=proxy.url)).start()
    yield proc
    proc.kill()


@pytest.fixture(autouse=True)
def _fresh_counts(proxy: CountingProxy, upstream: LlamaCppUpstream) -> None:
    if upstream.proc is None or upstream.proc.poll() is not None:
        upstream.restart()
    proxy.reset()


def ended(api: httpx.Client, request_id: str, timeout: float = 60.0) -> dict:
    """The job's status once it has ended (``?wait`` returns at each change of status)."""
    deadline = time.monotonic() + timeout
    status = api.get(f"/v2/requests/{request_id}/status").json()
    while status["status"] in ("QUEUED", "PROCESSING") and time.monotonic() < deadline:
        status = api.get(f"/v2/requests/{request_id}/status", params={"wait": 10}).json()
    return status


def job_row(served: ServerProcess, request_id: str) -> tuple[int, int]:
    """(attempts, handbacks) of a job, from the server's database."""
    with sqlite3.connect(served.data_dir / "stratus.db") as db:
        row = db.execute("SELECT attempts, handbacks FROM jobs WHERE id = ?",
                         (request_id,)).fetchone()
    return row


def test_the_queue_and_sync_surfaces_run_on_the_upstream(proxy: CountingProxy,
                                                         served: ServerProcess) -> None:
    with served.client() as api:
        sync = api.post("/v1/gemma-remote", json={
            "messages": HELLO, "instruction": "Be brief.", "max_tokens": 6,
            "stop_sequences": ["\n\n\n"], "temperature": 0.2})
        assert sync.status_code == 200, sync.text
        message = sync.json()
        submitted = api.post("/v2/gemma-remote", json={"messages": HELLO, "max_tokens": 5})
        rid = submitted.json()["request_id"]
        status = ended(api, rid)
        result = api.get(f"/v2/requests/{rid}").json()
    assert message["content"][0]["text"]
    assert 1 <= message["usage"]["output_tokens"] <= 6
    assert message["usage"]["input_tokens"] > 4  # the upstream's tokenizer, and the markup
    assert status["status"] == "COMPLETED"
    assert json.loads(result["output"])["content"][0]["text"]
    sent = proxy.requests[0]
    assert sent["model"] == "gemma-3-270m" and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["max_tokens"] == 6 and sent["temperature"] == 0.2
    assert sent["stop"] == ["\n\n\n"]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Say hello."}]


def test_every_surface_streams_from_the_upstream(served: ServerProcess) -> None:
    claude = anthropic.Anthropic(base_url=served.url, api_key=served.key, max_retries=0)
    with claude.messages.stream(model="gemma-remote", max_tokens=8, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == final.content[0].text  # type: ignore[union-attr]
    assert 1 <= final.usage.output_tokens <= 8

    gpt = openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)
    chunks = list(gpt.chat.completions.create(model="gemma-remote", max_tokens=8,
                                              messages=HELLO, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].choices[0].finish_reason in ("length", "stop")

    with served.client() as api, api.stream("POST", "/v1/gemma-remote", json={
            "messages": HELLO, "max_tokens": 8, "stream": True}) as response:
        names = [line.removeprefix("event: ") for line in response.iter_lines()
                 if line.startswith("event: ")]
    assert names.count("content_block_delta") > 1 and names[-1] == "message_stop"


def test_max_concurrency_is_never_exceeded(proxy: CountingProxy,
                                           served: ServerProcess) -> None:
    # (llama-cpp-python's server counts tokens only between generations: this model counts
    # by estimate, so that the six are queued together)
    with served.client() as api, concurrent.futures.ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(lambda _: api.post("/v2/gemma-pair", json={
            "messages": HELLO, "max_tokens": 12}).json()["request_id"], range(6)))
        for rid in ids:
            assert ended(api, rid)["status"] == "COMPLETED"
    assert len(proxy.requests) == 6
    assert proxy.max_inflight == 2  # max_concurrency: never more, and used


def test_a_cancelled_stream_frees_the_upstream(proxy: CountingProxy,
                                              served: ServerProcess) -> None:
    with served.client() as api:
        with api.stream("POST", "/v1/messages", json={
                "model": "gemma-remote", "max_tokens": 1000, "messages": HELLO,
                "stream": True}) as response:
            deltas = 0
            for line in response.iter_lines():
                deltas += line.startswith("event: content_block_delta")
                if deltas == 3:
                    break  # the client goes away
        assert eventually(lambda: proxy.inflight == 0)  # the upstream request was closed
        after = api.post("/v1/gemma-remote", json={"messages": HELLO, "max_tokens": 4})
    assert after.status_code == 200, after.text
    assert proxy.client_disconnects >= 1  # the proxy saw the upstream request closed


def test_a_429_hands_the_job_back_without_spending_an_attempt(
        proxy: CountingProxy, served: ServerProcess) -> None:
    proxy.fail_next(1, 429, {"Retry-After": "1"})
    with served.client() as api:
        response = api.post("/v1/gemma-remote", json={"messages": HELLO, "max_tokens": 4})
    assert response.status_code == 200, response.text
    assert proxy.rejected == 1 and len(proxy.requests) == 2
    assert job_row(served, response.headers["x-request-id"]) == (1, 1)


def test_an_upstream_killed_mid_stream_fails_the_job_and_charges_nothing_more(
        upstream: LlamaCppUpstream, served: ServerProcess) -> None:
    with served.client() as admin:
        key = new_key(admin, "openai-killed", credits=10.0)
    with served.client(key) as api:
        with api.stream("POST", "/v1/gemma-remote", json={
                "messages": HELLO, "max_tokens": 1000, "stream": True}) as response:
            lines = []
            for line in response.iter_lines():
                lines.append(line)
                if sum(x.startswith("event: content_block_delta") for x in lines) == 3:
                    upstream.kill()
        rid = response.headers["x-request-id"]
        status = api.get(f"/v2/requests/{rid}/status")
        credits = api.get("/v1/account").json()["credits"]
    assert "event: error" in lines and "event: message_stop" not in lines
    assert status.status_code == 422
    body = status.json()
    assert body["status"] == "FAILED"
    assert body["error"].startswith("the engine failed: the upstream's stream broke")
    assert credits["reserved"] == 0 and credits["balance"] == pytest.approx(10.0)


def test_an_upstream_that_is_down_cools_down_and_its_jobs_wait(
        upstream: LlamaCppUpstream, served: ServerProcess) -> None:
    upstream.stop()
    with served.client() as api:
        rid = api.post("/v2/gemma-remote", json={"messages": HELLO, "max_tokens": 4}
                       ).json()["request_id"]

        def cooling() -> bool:
            card = next(m for m in api.get("/v1/models").json()["data"]
                        if m["slug"] == "gemma-remote")
            return card["status"]["state"] == "cooldown"

        assert eventually(cooling)
        ready = httpx.get(served.url + "/ready").json()
        assert ready["status"] == "ready"  # the process is fine; its upstream is not
        assert ready["models"]["gemma-remote"]["state"] == "cooldown"
        assert "HTTP 502" in ready["models"]["gemma-remote"]["reason"]
        time.sleep(1.5)  # a probe or two find it still down
        assert api.get(f"/v2/requests/{rid}/status").json()["status"] == "QUEUED"
        upstream.restart()
        status = ended(api, rid)
    assert status["status"] == "COMPLETED"
    attempts, handbacks = job_row(served, rid)
    assert attempts == 1 and 1 <= handbacks <= 2  # the tries before the cooldown


def test_images_reach_a_vision_model_as_data_uris(proxy: CountingProxy,
                                                  served: ServerProcess) -> None:
    data = image_b64("PNG", (8, 8))
    with served.client() as api:
        api.post("/v1/gemma-vision", json={"max_tokens": 2, "messages": [{
            "role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": data}},
                {"type": "text", "text": "What is this?"}]}]})
        private = api.post("/v1/gemma-vision", json={"max_tokens": 2, "messages": [{
            "role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "http://10.1.2.3/cat.png"}},
                {"type": "text", "text": "What is this?"}]}]})
    assert proxy.requests[0]["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        {"type": "text", "text": "What is this?"}]}]
    assert private.status_code == 400
    assert "non-public address" in private.json()["error"]
    assert len(proxy.requests) == 1  # the refused one never reached the upstream
