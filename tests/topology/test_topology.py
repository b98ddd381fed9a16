"""Two API nodes, two workers, one PostgreSQL, one Redis: what a deployment promises when its
processes die, its Redis goes away, or its database stops."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import user
from tests.topology.conftest import Cluster


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def wait_for(check, timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(every)


def submit(client: httpx.Client, model: str, text: str, **extra) -> str:
    response = client.post(f"/v2/{model}", json={**user(text), **extra})
    assert response.status_code == 200, response.text
    return response.json()["request_id"]


def status(client: httpx.Client, request_id: str) -> str:
    return client.get(f"/v2/requests/{request_id}/status").json()["status"]


def result(client: httpx.Client, request_id: str, timeout: float = 30.0) -> dict:
    wait_for(lambda: status(client, request_id) in ("COMPLETED", "FAILED"), timeout)
    response = client.get(f"/v2/requests/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()


def sse_events(lines) -> Iterator[tuple[str, dict]]:
    """Server-sent events as they arrive."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def test_a_stream_on_one_node_sees_a_job_on_a_worker_live(cluster: Cluster) -> None:
    a, b = cluster.api(), cluster.api()
    cluster.worker()
    cluster.worker()
    body = {"model": "echo-slow", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": words(30)}]}
    deltas, status_at_first_delta = [], None
    with cluster.client(a) as client, cluster.client(b) as other, \
            client.stream("POST", "/v1/messages", json=body) as response:
        assert response.status_code == 200
        request_id = response.headers["request-id"]
        last = ""
        for last, data in sse_events(response.iter_lines()):
            if last == "content_block_delta":
                deltas.append(data["delta"]["text"])
                if status_at_first_delta is None:
                    status_at_first_delta = status(other, request_id)
    assert last == "message_stop"
    assert status_at_first_delta == "PROCESSING"  # text arrived while the job still ran
    assert len(deltas) > 3  # in pieces as made, not in one block at the end
    assert "".join(deltas) == words(30)


def test_a_killed_workers_job_runs_again_and_is_charged_once(cluster: Cluster) -> None:
    api = cluster.api()
    first = cluster.worker()
    key = cluster.new_key("killed", "--credits", "10")
    with cluster.client(api, key) as client:
        # 60 tokens at 100 ms: still running once the second worker is up
        request_id = submit(client, "echo-slow", words(60), max_tokens=100)
        wait_for(lambda: status(client, request_id) == "PROCESSING")
        cluster.worker()  # the second worker, idle until the first dies
        assert status(client, request_id) == "PROCESSING"
        first.kill()
        body = result(client, request_id, timeout=40)
        assert body["status"] == "COMPLETED"
        assert json.loads(body["output"])["content"][0]["text"] == words(60)
        history = client.get("/v1/requests").json()["data"]
        account = client.get("/v1/account").json()["credits"]
    assert [row["status"] for row in history] == ["COMPLETED"]
    (attempts,) = cluster.sql("SELECT attempts FROM jobs WHERE id = %s", request_id)[0]
    assert attempts == 2
    cost = body["metrics"]["cost"]
    assert history[0]["credits_deduction"] == pytest.approx(cost)
    assert account["balance"] == pytest.approx(10 - cost)
    assert account["reserved"] == 0


def test_a_killed_api_node_loses_nothing(cluster: Cluster) -> None:
    a, b = cluster.api(), cluster.api()
    cluster.worker()
    body = {"model": "echo-slow", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": words(20)}]}
    with cluster.client(a) as client, client.stream("POST", "/v1/messages",
                                                    json=body) as response:
        request_id = response.headers["request-id"]
        for line in response.iter_lines():
            if "content_block_delta" in line:
                break
        a.kill()
    with cluster.client(b) as other:
        done = result(other, request_id)
    assert done["status"] == "COMPLETED"
    assert json.loads(done["output"])["content"][0]["text"] == words(20)


def test_concurrent_submits_on_both_nodes_never_overdraw(cluster: Cluster) -> None:
    a, b = cluster.api(), cluster.api()
    cluster.worker()
    cluster.worker()
    # worst case of one request: (2 input + 10 output tokens) x 0.001 USD = 0.012 USD
    key = cluster.new_key("tight", "--credits", "0.06")

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, headers={"x-api-key": key}) as client:
            return await asyncio.gather(*(
                client.post(f"{(a, b)[i % 2].url}/v2/echo-priced", json=user("x y"))
                for i in range(200)))

    responses = asyncio.run(run())
    codes = {r.status_code for r in responses}
    assert codes <= {200, 406}, codes
    accepted = [r.json()["request_id"] for r in responses if r.status_code == 200]
    assert 5 <= len(accepted) < 200
    with cluster.client(a, key) as client:
        ended = [result(client, request_id) for request_id in accepted]
        account = client.get("/v1/account").json()["credits"]
        history = client.get("/v1/requests", params={"limit": 100}).json()
    assert all(body["status"] == "COMPLETED" for body in ended)
    spent = sum(body["metrics"]["cost"] for body in ended)
    assert account["balance"] >= 0
    assert account["reserved"] == 0
    assert account["balance"] == pytest.approx(0.06 - spent, abs=1e-9)
    assert not history["has_more"]
    assert sorted(row["request_id"] for row in history["data"]) == sorted(accepted)
    charged = sum(row["credits_deduction"] for row in history["data"])
    assert charged == pytest.approx(spent, abs=1e-9)


def test_a_request_limit_holds_across_nodes(cluster: Cluster) -> None:
    a, b = cluster.api(), cluster.api()
    cluster.worker()
    key = cluster.new_key("limited", "--rpm", "30")
    started = time.monotonic()
    codes = []
    with cluster.client(a, key) as on_a, cluster.client(b, key) as on_b:
        for i in range(60):
            codes.append((on_a, on_b)[i % 2].post("/v2/echo", json=user("hi")).status_code)
    elapsed = time.monotonic() - started
    assert set(codes) <= {200, 429}
    # 30 at once, plus what the bucket refilled (0.5 a second) while the test ran
    assert 30 <= codes.count(200) <= 30 + int(elapsed * 0.5) + 1
    assert codes.count(200) < 40


def test_redis_going_away_loses_no_job_or_charge(cluster: Cluster) -> None:
    a, b = cluster.api(), cluster.api()
    cluster.worker()
    cluster.worker()
    key = cluster.new_key("resilient", "--credits", "100")
    ids: list[str] = []
    with cluster.client(a, key) as on_a, cluster.client(b, key) as on_b:
        for i in range(10):
            ids.append(submit((on_a, on_b)[i % 2], "echo-priced", f"before {i}"))
        body = {"model": "echo-slow", "max_tokens": 50, "stream": True,
                "messages": [{"role": "user", "content": words(25)}]}
        text = []
        with on_a.stream("POST", "/v1/messages", json=body) as response:
            ids.append(response.headers["request-id"])
            for name, data in sse_events(response.iter_lines()):
                if name == "content_block_delta":
                    text.append(data["delta"]["text"])
                    if len(text) == 2:
                        cluster.redis.stop()  # mid-stream
                        for i in range(10):
                            ids.append(submit((on_a, on_b)[i % 2], "echo-priced",
                                              f"during {i}"))
        assert "".join(text) == words(25)  # completed from the stored result
        cluster.redis.start()
        for i in range(5):
            ids.append(submit(on_b, "echo-priced", f"after {i}"))
        ended = [result(on_a, request_id) for request_id in ids]
        account = on_a.get("/v1/account").json()["credits"]
        history = on_a.get("/v1/requests", params={"limit": 100}).json()["data"]
    assert [body["status"] for body in ended] == ["COMPLETED"] * 26
    spent = sum(body["metrics"]["cost"] for body in ended)
    assert account["balance"] == pytest.approx(100 - spent, abs=1e-9)
    assert account["reserved"] == 0
    assert sorted(row["request_id"] for row in history) == sorted(ids)


def test_a_stopped_database_is_a_quick_503_and_comes_back(cluster: Cluster, tmp_path) -> None:
    from tests._services import PostgresServer

    own = PostgresServer().start()  # this test stops its database
    try:
        cluster.database_url = own.url()
        api = cluster.api()
        cluster.worker()
        with cluster.client(api, timeout=30) as client:
            assert result(client, submit(client, "echo", "before"))["status"] == "COMPLETED"
            own.stop()
            started = time.monotonic()
            response = client.post("/v2/echo", json=user("while down"))
            took = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert "database" in response.json()["error"]
            assert "retry-after" in response.headers
            assert took < 20  # an answer, not a hang until the client gives up
            own.start()

            def admitted() -> bool:
                return client.post("/v2/echo", json=user("back")).status_code == 200

            wait_for(admitted, timeout=30, every=0.5)
            assert result(client, submit(client, "echo", "after"))["status"] == "COMPLETED"
    finally:
        cluster.close()
        own.close()


def test_a_terminated_worker_hands_back_what_it_could_not_finish(cluster: Cluster) -> None:
    api = cluster.api()
    first = cluster.worker()
    with cluster.client(api) as client:
        # 60 tokens at 100 ms: longer than the worker's 1 s grace
        request_id = submit(client, "echo-slow", words(60), max_tokens=100)
        wait_for(lambda: status(client, request_id) == "PROCESSING")
        exited = threading.Event()
        threading.Thread(target=lambda: (first.terminate(), exited.set()), daemon=True).start()
        wait_for(exited.is_set, timeout=30)
        assert status(client, request_id) == "QUEUED"  # handed back, not failed
        (attempts,) = cluster.sql("SELECT attempts FROM jobs WHERE id = %s", request_id)[0]
        assert attempts == 0  # a handed-back attempt does not count
        cluster.worker()
        done = result(client, request_id, timeout=40)
    assert done["status"] == "COMPLETED"
    assert json.loads(done["output"])["content"][0]["text"] == words(60)
