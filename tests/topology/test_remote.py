"""A model served by an upstream, on a split deployment: the API node only counts (it holds
no upstream key), the worker holds the key and the slots."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest
from tests.engines.remote._fake_anthropic import Fail, FakeAnthropic, Reply
from tests.test_telemetry import scrape, value
from tests.topology.conftest import Cluster

KEY_ENV = "STRATUS_TEST_UPSTREAM_KEY"
MODEL = """
[[models]]
slug = "claude-remote"
engine = "anthropic"
[models.options]
base_url = "{url}"
model = "claude-3-5-haiku-latest"
api_key_env = "{env}"
max_concurrency = 2
cooldown_after = 1
cooldown = 3
max_cooldown = 3
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key="sk-ant-split") as server:
        yield server


def test_an_upstream_model_runs_on_the_worker_behind_an_api_node(
        cluster: Cluster, fake: FakeAnthropic) -> None:
    cluster.models = MODEL.format(url=fake.url, env=KEY_ENV)
    api = cluster.api()  # no key in its environment: it needs none to admit
    worker = cluster.worker("claude-remote", env={KEY_ENV: "sk-ant-split"})
    client = anthropic.Anthropic(base_url=api.url, api_key=api.key, max_retries=0)
    fake.script(Reply(text="from the upstream", delay=0.01))
    with client.messages.stream(model="claude-remote", max_tokens=20,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        pieces = list(stream.text_stream)
    assert "".join(pieces) == "from the upstream" and len(pieces) > 1
    assert fake.requests[-1].headers["x-api-key"] == "sk-ant-split"

    fake.script(Fail(503, "api_error"), Reply(text="after the cooldown"))
    with cluster.client(api) as http:
        rid = http.post("/v2/claude-remote", json={
            "max_tokens": 20, "messages": [{"role": "user", "content": "again"}]}
                        ).json()["request_id"]
        seen = []  # the API node, which runs no engine, shows what the worker reports
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            card = http.get("/v1/models/claude-remote").json()
            status = http.get(f"/v2/requests/{rid}/status").json()["status"]
            seen.append((card["status"]["state"], status))
            if status == "COMPLETED":
                break
            time.sleep(0.1)
        result = http.get(f"/v2/requests/{rid}").json()
    assert ("cooldown", "QUEUED") in seen and seen[-1][1] == "COMPLETED"
    assert '"after the cooldown"' in result["output"]
    api_ready = httpx.get(api.url + "/ready").json()
    assert api_ready["models"]["claude-remote"]["state"] == "ready"
    ready = httpx.get(worker.url + "/ready").json()
    assert ready["models"] == {"claude-remote": {"state": "ready", "reason": None,
                                                 "next_probe_at": None}}
    assert any(r.path == "/v1/models" for r in fake.requests)  # the worker's probe


def test_each_role_reports_what_it_does_at_metrics(cluster: Cluster,
                                                   fake: FakeAnthropic) -> None:
    cluster.models = MODEL.format(url=fake.url, env=KEY_ENV)
    api = cluster.api()
    worker = cluster.worker("claude-remote", env={KEY_ENV: "sk-ant-split"})
    fake.script(Reply(text="counted"))
    with cluster.client(api) as http:
        assert http.post("/v1/claude-remote", json={
            "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}).status_code == 200
    at_api, at_worker = scrape(api), scrape(worker)
    assert value(at_api, "stratus_http_requests_total", surface="segmind",
                 model="claude-remote", code="200") == 1
    assert value(at_worker, "stratus_jobs_total", model="claude-remote", status="COMPLETED",
                 error_type="") == 1
    assert value(at_worker, "stratus_engine_slots", model="claude-remote", state="total") == 2
    assert value(at_api, "stratus_queue_depth", model="claude-remote") == 0
    assert value(at_api, "stratus_workers", model="claude-remote") == 1  # as it reports
