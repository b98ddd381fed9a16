"""gemma-3-270m loaded on demand by a real server: the first request waits for the load, the
model's memory is given back when it has been idle, the next request loads it again, and
with a memory budget for one model two models take turns, never loaded together."""

from __future__ import annotations

import re
from pathlib import Path

from stratus import weights
from tests.conftest import eventually, user

GEMMA = """
[[models]]
slug = "echo"              # the first model: loaded at start

[[models]]
slug = "{slug}"
engine = "llamacpp"
weights = "package:gemma-3-270m"
context_length = 256
max_output_tokens = 16
default_max_tokens = 8
batch_slots = 2
idle_unload = {idle}
[models.options]
chat_format = "gemma"
"""


def _rss(pid: int) -> int:
    """Resident memory of a process, bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) * 1024


def test_loaded_when_asked_released_when_idle_and_loaded_again(make_server) -> None:
    server = make_server(GEMMA.format(slug="gemma", idle=2), timeout=180)
    pid = server.proc.pid
    size = weights.resolve("package:gemma-3-270m", server.data_dir, progress=False).stat().st_size
    with server.client() as client:
        state = client.get("/v1/models/gemma").json()["status"]["state"]
        assert state == "unloaded"
        cold_rss = _rss(pid)
        rid = client.post("/v2/gemma", json={**user("Hello"), "max_tokens": 4}).json()[
            "request_id"]
        assert eventually(lambda: client.get(f"/v2/requests/{rid}/status").json().get(
            "loading") is True, 60)
        assert eventually(lambda: client.get(f"/v2/requests/{rid}").status_code == 200, 120)
        first = client.get(f"/v2/requests/{rid}").json()["metrics"]
        assert first["cold_start_ms"] > 0
        loaded_rss = _rss(pid)
        assert loaded_rss - cold_rss > size / 2  # the weights are in memory now

        warm = client.post("/v2/gemma", json={**user("Hi"), "max_tokens": 4}).json()
        assert eventually(lambda: client.get(
            f"/v2/requests/{warm['request_id']}").status_code == 200, 60)
        assert "cold_start_ms" not in client.get(
            f"/v2/requests/{warm['request_id']}").json()["metrics"]

        assert eventually(lambda: client.get("/v1/models/gemma").json()["status"]["state"]
                          == "unloaded", 60)  # idle for 2 s
        assert eventually(lambda: loaded_rss - _rss(pid) > size / 2, 30)  # given back

        again = client.post("/v1/gemma", json={**user("Hello"), "max_tokens": 4})
        assert again.status_code == 200, again.text
        assert again.json()["content"][0]["text"]
        assert _rss(pid) - cold_rss > size / 2


BUDGET = GEMMA.format(slug="gemma-a", idle=0) + """
[[models]]
slug = "gemma-b"
engine = "llamacpp"
weights = "package:gemma-3-270m"
context_length = 256
max_output_tokens = 16
default_max_tokens = 8
batch_slots = 2
[models.options]
chat_format = "gemma"

[worker]
memory_budget = {budget}
"""


def test_a_budget_for_one_model_makes_two_take_turns(make_server, tmp_path: Path) -> None:
    path = weights.resolve("package:gemma-3-270m", tmp_path / "probe", progress=False)
    config = BUDGET.format(budget=int(path.stat().st_size * 1.5))
    server = make_server(config, extra_args=("--log-level", "info"), timeout=180)
    with server.client() as client:
        for turn in range(4):
            model = ("gemma-a", "gemma-b")[turn % 2]
            answer = client.post(f"/v1/{model}", json={**user(f"Say {turn}"), "max_tokens": 3})
            assert answer.status_code == 200, answer.text
    events = re.findall(r"model (gemma-[ab]) (loaded|unloaded)", server.log())
    held: set[str] = set()
    for model, event in events:
        if event == "loaded":
            held.add(model)
            assert len(held) == 1, events  # never both at once
        else:
            held.discard(model)
    assert [m for m, e in events if e == "loaded"] == ["gemma-a", "gemma-b"] * 2, events
