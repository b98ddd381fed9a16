"""Request history over HTTP: what each entry says, filters, pagination, retention."""

from __future__ import annotations

import time

import httpx
import pytest

from tests._server import ServerProcess
from tests.api.test_segmind import submit, wait_status
from tests.conftest import new_key, user


@pytest.fixture
def history_key(api: httpx.Client, server: ServerProcess) -> str:
    return new_key(api, f"history-{time.monotonic_ns()}")


def test_entry_has_cost_latency_tokens_and_timestamps(history_key: str,
                                                      server: ServerProcess) -> None:
    with server.client(history_key) as client:
        done = client.post("/v1/echo-priced", json=user("one two"))
        rid = done.headers["x-request-id"]
        entry = client.get(f"/v1/requests/{rid}").json()
        assert entry["request_id"] == rid and entry["status"] == "COMPLETED"
        assert (entry["model"], entry["slug"]) == ("echo-priced", "echo-priced")
        assert (entry["input_tokens"], entry["output_tokens"]) == (2, 2)
        assert entry["credits_deduction"] == pytest.approx(0.004)
        assert entry["latency_ms"] > 0 and entry["error"] is None
        assert entry["created_at"] <= entry["started_at"] <= entry["completed_at"]
        failed = client.post("/v1/echo-timeout", json=user(" ".join(["w"] * 10)))
        entry = client.get(f"/v1/requests/{failed.headers['x-request-id']}").json()
        assert entry["status"] == "FAILED" and entry["error_type"] == "timeout"
        assert "execution timeout" in entry["error"] and entry["credits_deduction"] == 0
        # another account cannot see it
        assert server.client().get(f"/v1/requests/{rid}").status_code == 404


def test_filters_and_pagination(history_key: str, server: ServerProcess) -> None:
    with server.client(history_key) as client:
        since = time.time()
        ids = [client.post("/v1/echo", json=user(f"n{i}")).headers["x-request-id"]
               for i in range(5)]
        slow = submit(client, "echo-slow", user(" ".join(["w"] * 50)))["request_id"]
        wait_status(client, slow, {"PROCESSING"})
        client.post(f"/v2/requests/{slow}/cancel")

        def page(**params) -> dict:
            response = client.get("/v1/requests", params=params)
            assert response.status_code == 200, response.text
            return response.json()

        everything = page(limit=100)
        assert [e["request_id"] for e in everything["data"]] == [slow, *reversed(ids)]
        assert everything["has_more"] is False
        assert [e["request_id"] for e in page(status="FAILED")["data"]] == [slow]
        assert [e["request_id"] for e in page(model="echo", limit=100)["data"]] == ids[::-1]
        assert page(model="echo-slow", status="COMPLETED")["data"] == []
        assert len(page(since=since)["data"]) == 6
        assert page(until=since)["data"] == []
        assert len(page(since="2000-01-01")["data"]) == 6
        # pages of two, newest first, with no gaps or repeats
        seen, after = [], None
        while True:
            params = {"limit": 2, "model": "echo", **({"after_id": after} if after else {})}
            got = page(**params)
            seen += [e["request_id"] for e in got["data"]]
            if not got["has_more"]:
                break
            after = got["last_id"]
        assert seen == ids[::-1]


@pytest.mark.parametrize(("params", "says"), [
    ({"status": "DONE"}, "status must be one of"),
    ({"limit": "0"}, "limit must be"),
    ({"limit": "1000"}, "limit must be"),
    ({"since": "yesterday"}, "since must be an ISO 8601"),
    ({"after_id": "nope"}, "after_id 'nope' is not a request"),
    ({"colour": "red"}, "unknown query parameter 'colour'"),
])
def test_bad_filters_are_400(api: httpx.Client, params: dict, says: str) -> None:
    response = api.get("/v1/requests", params=params)
    assert response.status_code == 400 and says in response.json()["error"]


def test_history_outlives_results(make_server) -> None:
    server = make_server(env={"STRATUS_RESULT_TTL": "1", "STRATUS_HISTORY_TTL": "3"})
    with server.client() as api:
        rid = submit(api, "echo", user("kept longer"))["request_id"]
        wait_status(api, rid, {"COMPLETED"})
        time.sleep(1.5)
        assert api.get(f"/v2/requests/{rid}").status_code == 404  # the result is gone
        assert api.get(f"/v1/requests/{rid}").json()["status"] == "COMPLETED"
        deadline = time.monotonic() + 10
        while api.get(f"/v1/requests/{rid}").status_code == 200:
            assert time.monotonic() < deadline, "history was never dropped"
            time.sleep(0.5)
        missing = api.get(f"/v1/requests/{rid}")
        assert missing.status_code == 404 and "kept" in missing.json()["error"]
