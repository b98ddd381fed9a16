"""A model loaded on demand, seen from the API: a job waiting for the load says so in its
status (with when it should start, once a load has been timed), the model list shows the
model's state, and /metrics counts the cold starts."""

from __future__ import annotations

import json

import stratus
from tests.conftest import eventually, user
from tests.test_telemetry import scrape, value

CONFIG = """
[[models]]
slug = "echo"

[[models]]
slug = "echo-lazy"
idle_unload = 1
[models.options]
load_ms = 400
"""


def _state(client, model: str) -> str:
    return client.get(f"/v1/models/{model}").json()["status"]["state"]


def test_a_job_waiting_for_its_model_to_load_says_so(make_server) -> None:
    server = make_server(CONFIG)
    with server.client() as client:
        assert _state(client, "echo") == "ready"  # the first model is loaded at start
        assert _state(client, "echo-lazy") == "unloaded"
        rid = client.post("/v2/echo-lazy", json=user("wake up")).json()["request_id"]
        seen: list[dict] = []

        def loading() -> bool:
            seen.append(client.get(f"/v2/requests/{rid}/status").json())
            return seen[-1].get("loading") is True

        assert eventually(loading, 10), seen
        assert seen[-1]["status"] == "QUEUED" and "estimated_start" not in seen[-1]
        assert _state(client, "echo-lazy") in ("loading", "ready")
        assert eventually(lambda: client.get(f"/v2/requests/{rid}").status_code == 200, 10)
        result = client.get(f"/v2/requests/{rid}").json()
        assert result["metrics"]["cold_start_ms"] >= 390  # the load took 400 ms
        assert json.loads(result["output"])["content"][0]["text"] == "wake up"
        warm = client.post("/v1/echo-lazy", json=user("again")).json()
        assert warm["content"][0]["text"] == "again"
        assert eventually(lambda: _state(client, "echo-lazy") == "unloaded", 10)  # idle 1 s

        with stratus.Client(api_key=server.key, base_url=server.url) as sdk:
            job = sdk.submit_chat("echo-lazy", **user("once more"))
            statuses = []

            def timed() -> bool:  # the SDK's status says it too, with the first load's time
                statuses.append(job.status())
                return statuses[-1].loading and statuses[-1].estimated_start is not None

            assert eventually(timed, 10), statuses
            assert job.wait(timeout=10).text == "once more"
    metrics = scrape(server)
    assert value(metrics, "stratus_cold_start_seconds_count", model="echo-lazy") == 2
    assert value(metrics, "stratus_model_loaded", model="echo") == 1
