"""Overload on echo: a burst of ten times more submits than a model can hold at once.

Every answer is a 200 or a 429 "queue full" with ``Retry-After``; the model never holds more
than ``max_queue`` waiting plus ``batch_slots`` running requests; every admitted request
completes with its reply; and ``/health`` answers all along.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import httpx

from tests._server import ServerProcess
from tests.conftest import user

SLOTS = 2
MAX_QUEUE = 4
CAPACITY = SLOTS + MAX_QUEUE
BURST = 10 * CAPACITY

# One word a second: every job runs for seconds, far longer than the burst takes to arrive.
CONFIG = f"""
[server]
sync_timeout = 300

[[models]]
slug = "echo"
batch_slots = {SLOTS}
max_queue = {MAX_QUEUE}
[models.options]
delay_ms = 1000
"""


@dataclass(frozen=True)
class Shot:
    sync: bool
    text: str
    response: httpx.Response


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def ended(client: httpx.Client, request_id: str) -> dict:
    """The status body of a job once it has ended."""
    for _ in range(20):
        response = client.get(f"/v2/requests/{request_id}/status", params={"wait": 30})
        assert response.status_code in (200, 422), response.text
        body = response.json()
        if body["status"] in ("COMPLETED", "FAILED"):
            return body
    raise AssertionError(f"request {request_id} never ended: {body}")


def burst(server: ServerProcess) -> list[Shot]:
    """BURST submits at once, half to ``/v2/echo``, half sync to ``/v1/echo``."""
    barrier = threading.Barrier(BURST)

    def fire(i: int) -> Shot:
        sync = i % 2 == 1
        text = f"sync {i}" if sync else f"queued {i} job"
        with httpx.Client(base_url=server.url, headers={"x-api-key": server.key},
                          timeout=300.0) as client:
            barrier.wait()
            response = client.post("/v1/echo" if sync else "/v2/echo", json=user(text))
        return Shot(sync, text, response)

    with ThreadPoolExecutor(BURST) as pool:
        return list(pool.map(fire, range(BURST)))


def test_a_burst_gets_200s_and_429s_and_loses_nothing(make_server) -> None:
    server = make_server(CONFIG)
    health: list[int | str] = []
    stop = threading.Event()

    def poll_health() -> None:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            while not stop.is_set():
                try:
                    health.append(client.get("/health").status_code)
                except httpx.HTTPError as exc:
                    health.append(repr(exc))
                stop.wait(0.05)

    poller = threading.Thread(target=poll_health)
    poller.start()
    try:
        shots = burst(server)
    finally:
        stop.set()
        poller.join()

    others = [(shot.response.status_code, shot.response.text[:200]) for shot in shots
              if shot.response.status_code not in (200, 429)]
    assert not others, others
    assert health and all(code == 200 for code in health), [c for c in health if c != 200]

    refused = [shot for shot in shots if shot.response.status_code == 429]
    admitted = [shot for shot in shots if shot.response.status_code == 200]
    assert refused and admitted
    for shot in refused:
        assert int(shot.response.headers["retry-after"]) >= 1, shot.response.headers
        assert "queue full" in shot.response.json()["error"], shot.response.text

    with server.client() as client:
        spans: list[tuple[float, float]] = []
        ids = set()
        for shot in admitted:
            if shot.sync:
                request_id = shot.response.headers["x-request-id"]
                assert shot.response.json()["content"] == [{"type": "text", "text": shot.text}]
            else:
                request_id = shot.response.json()["request_id"]
            status = ended(client, request_id)
            assert status["status"] == "COMPLETED", status
            if not shot.sync:
                result = client.get(f"/v2/requests/{request_id}")
                assert result.status_code == 200, result.text
                message = json.loads(result.json()["output"])
                assert message["content"] == [{"type": "text", "text": shot.text}]
            ids.add(request_id)
            spans.append((seconds(status["created_at"]), seconds(status["completed_at"])))

        # At no admission did the model hold more than it may: each admitted request counts
        # from its admission until it completed.
        for admitted_at, _ in spans:
            held = sum(1 for start, end in spans if start <= admitted_at < end)
            assert held <= CAPACITY, (held, sorted(spans))

        # The refused requests left nothing behind; the admitted ones are all there.
        history = client.get("/v1/requests", params={"limit": 100}).json()["data"]
        assert {entry["request_id"] for entry in history} == ids
        assert {entry["status"] for entry in history} == {"COMPLETED"}
