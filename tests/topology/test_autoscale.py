"""``stratus autoscale`` on a deployment in miniature: no worker while nothing waits, workers
started when jobs arrive, and gone again once they have had nothing to do for --max-idle."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from tests.conftest import eventually, user, words
from tests.topology.conftest import CONFIG, Cluster


def test_workers_scale_from_zero_with_the_queue_and_back(cluster: Cluster) -> None:
    api = cluster.api()
    key = cluster.new_key("scaled")
    root = cluster.root / "autoscale"
    root.mkdir()
    (root / "config.toml").write_text(CONFIG)
    log_path = root / "autoscale.log"
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "stratus", "autoscale", "--config", str(root / "config.toml"),
             "--data-dir", str(root), "--min", "0", "--max", "2", "--max-idle", "2",
             "--interval", "0.2", "--jobs-per-worker", "16", "--", "--log-level", "warning"],
            env={**os.environ, **cluster.env, "PYTHONUNBUFFERED": "1"}, stdout=log,
            stderr=subprocess.STDOUT)
    try:
        def text() -> str:
            return log_path.read_text(errors="replace")

        time.sleep(1.0)  # five looks at an empty queue
        assert "started worker" not in text(), text()
        assert cluster.sql("SELECT count(*) FROM workers")[0][0] == 0
        with cluster.client(api, key) as client:
            card = client.get("/v1/models/echo-slow").json()["status"]
            assert card["state"] == "unloaded" and "no live worker" in card["reason"]
            ids = [client.post("/v2/echo-slow", json=user(words(3))).json()["request_id"]
                   for _ in range(20)]

            def done() -> bool:
                return all(client.get(f"/v2/requests/{rid}/status").json()["status"]
                           == "COMPLETED" for rid in ids)

            assert eventually(done, 90), text()
        started = re.findall(r"started worker pid (\d+)", text())
        assert 1 <= len(started) <= 2, text()  # 20 waiting, 16 per worker: at most 2
        assert eventually(lambda: len(re.findall(r"worker pid \d+ exited with 0", text()))
                          == len(started), 60), text()
        assert text().rstrip().endswith("(0 running)"), text()
        with cluster.client(api, key) as client:  # no live worker again, once a lease passed
            assert eventually(lambda: client.get("/v1/models/echo-slow").json()["status"][
                "state"] == "unloaded", 30)
        assert supervisor.poll() is None  # it goes on watching, with no worker
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
