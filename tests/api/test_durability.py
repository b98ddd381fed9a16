"""Nothing is lost when the process dies: SIGKILL and restart, SIGTERM drain, retention."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from tests.api.test_segmind import submit, wait_status
from tests.conftest import new_key, user, words

# One slot and 100 ms a word: jobs stay QUEUED behind one another long enough to kill the
# server while one is PROCESSING. A short lease lets the restarted server take that job back.
DURABLE_CONFIG = """
[server]
lease_seconds = 1
shutdown_grace = 10

[[models]]
slug = "echo-single"
batch_slots = 1
[models.options]
delay_ms = 100
"""


def attempts(data_dir, request_id: str) -> int:
    with sqlite3.connect(data_dir / "stratus.db") as db:
        return db.execute("SELECT attempts FROM jobs WHERE id = ?", (request_id,)).fetchone()[0]


def test_sigkill_restart_loses_nothing_and_completes_once(make_server) -> None:
    server = make_server(DURABLE_CONFIG)
    with server.client() as api:
        ids = [submit(api, "echo-single", user(f"job{i} " + words(10)))["request_id"]
               for i in range(3)]
        wait_status(api, ids[0], {"PROCESSING"})
        queued = api.get(f"/v2/requests/{ids[1]}/status").json()
        assert queued["status"] == "QUEUED" and queued["queue_position"] == 1
    server.kill()

    restarted = make_server(DURABLE_CONFIG, data_dir=server.data_dir)
    with restarted.client() as api:
        for i, rid in enumerate(ids):
            status = wait_status(api, rid, {"COMPLETED", "FAILED"}, timeout=30)
            assert status["status"] == "COMPLETED", status
            output = api.get(f"/v2/requests/{rid}").json()["output"]
            assert f"job{i} w0" in output
    # The job that was running when the server died ran again; the others ran once.
    assert attempts(server.data_dir, ids[0]) == 2
    assert attempts(server.data_dir, ids[1]) == 1
    assert attempts(server.data_dir, ids[2]) == 1
    # The key was created on the first start only.
    assert restarted.log().count("Created the first API key") == 1


def test_worker_killed_mid_job_charges_once(make_server) -> None:
    config = DURABLE_CONFIG.replace('slug = "echo-single"',
                                    'slug = "echo-single"\nprice_input = 1000\n'
                                    'price_output = 1000')
    server = make_server(config)
    with server.client() as admin:
        key = new_key(admin, "durable", credits=2.0)
    with server.client(key) as api:
        rid = submit(api, "echo-single", user(words(10)))["request_id"]
        wait_status(api, rid, {"PROCESSING"})
    server.kill()

    restarted = make_server(config, data_dir=server.data_dir)
    with restarted.client(key) as api:
        assert wait_status(api, rid, {"COMPLETED", "FAILED"}, timeout=30)["status"] == (
            "COMPLETED")
        cost = api.get(f"/v2/requests/{rid}").json()["metrics"]["cost"]
        assert cost == pytest.approx(0.02)  # 10 words in, 10 out, at 0.001 USD a token
        credits = api.get("/v1/account").json()["credits"]
        assert credits["balance"] == pytest.approx(2.0 - cost)
        assert credits["reserved"] == 0
        assert api.get(f"/v1/requests/{rid}").json()["credits_deduction"] == pytest.approx(cost)
    assert attempts(server.data_dir, rid) == 2
    with sqlite3.connect(server.data_dir / "stratus.db") as db:
        charges = db.execute("SELECT COUNT(*) FROM credit_ledger WHERE kind = 'charge' AND "
                             "request_id = ?", (rid,)).fetchone()[0]
    assert charges == 1


def test_sigterm_finishes_running_job_and_requeues_the_rest(make_server) -> None:
    server = make_server(DURABLE_CONFIG)
    with server.client() as api:
        running = submit(api, "echo-single", user(words(15)))["request_id"]
        waiting = submit(api, "echo-single", user(words(3)))["request_id"]
        wait_status(api, running, {"PROCESSING"})
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert server.terminate() in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log()

    restarted = make_server(DURABLE_CONFIG, data_dir=server.data_dir)
    with restarted.client() as api:
        # The running job finished within the grace period, before the old process exited.
        first = api.get(f"/v2/requests/{running}/status").json()
        assert first["status"] == "COMPLETED"
        assert wait_status(api, waiting, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"
    assert attempts(server.data_dir, running) == 1
    assert attempts(server.data_dir, waiting) == 1


def test_results_expire_after_ttl(make_server) -> None:
    server = make_server(extra_args=("--result-ttl", "1"))
    with server.client() as api:
        rid = submit(api, "claude-3-haiku", user("short lived"))["request_id"]
        wait_status(api, rid, {"COMPLETED"})
        assert api.get(f"/v2/requests/{rid}").status_code == 200
        time.sleep(1.5)
        for path in (f"/v2/requests/{rid}", f"/v2/requests/{rid}/status"):
            response = api.get(path)
            assert response.status_code == 404
            assert "expired" in response.json()["error"]


def test_result_ttl_from_environment(make_server) -> None:
    server = make_server(env={"STRATUS_RESULT_TTL": "1"})
    with server.client() as api:
        rid = submit(api, "echo", user("env ttl"))["request_id"]
        wait_status(api, rid, {"COMPLETED"})
        time.sleep(1.5)
        assert api.get(f"/v2/requests/{rid}").status_code == 404
