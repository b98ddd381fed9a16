"""A Message Batch in a split deployment: created on one API node, cancelled on another, run
by workers one of which is killed half-way; every request ends once and is charged once."""

from __future__ import annotations

import anthropic
import pytest
from tests.conftest import eventually, words
from tests.topology.conftest import Cluster


def test_a_batch_survives_a_killed_worker_and_is_cancelled_from_another_node(
        cluster: Cluster) -> None:
    a, b = cluster.api(), cluster.api()
    first = cluster.worker()
    key = cluster.new_key("batches", "--credits", "50")
    on_a = anthropic.Anthropic(api_key=key, base_url=a.url, max_retries=0)
    on_b = anthropic.Anthropic(api_key=key, base_url=b.url, max_retries=0)
    batch = on_a.messages.batches.create(requests=[
        {"custom_id": f"r{i}", "params": {
            "model": "echo-slow", "max_tokens": 32,
            "messages": [{"role": "user", "content": f"n{i} " + words(15)}]}}
        for i in range(60)])

    def completed() -> int:
        return cluster.sql("SELECT count(*) FROM jobs WHERE batch_id = %s "
                           "AND status = 'COMPLETED'", batch.id)[0][0]

    assert eventually(lambda: completed() >= 5, 60)
    cluster.worker()
    first.kill()  # its running requests go back to the queue when their leases lapse
    assert eventually(lambda: cluster.sql(
        "SELECT count(*) FROM jobs WHERE batch_id = %s AND attempts > 1", batch.id)[0][0], 60)
    assert eventually(lambda: completed() >= 15, 60)
    assert on_b.messages.batches.cancel(batch.id).cancel_initiated_at is not None
    assert eventually(lambda: on_a.messages.batches.retrieve(batch.id).processing_status
                      == "ended", 60)
    counts = on_b.messages.batches.retrieve(batch.id).request_counts
    assert counts.succeeded >= 15 and counts.canceled > 0
    assert counts.succeeded + counts.canceled + counts.errored == 60

    results = list(on_b.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == sorted(f"r{i}" for i in range(60))
    for line in results:
        if line.result.type == "succeeded":
            number = line.custom_id[1:]
            assert line.result.message.content[0].text == f"n{number} " + words(15)
    charged = cluster.sql("SELECT count(*), coalesce(sum(amount), 0) FROM credit_ledger "
                          "WHERE kind = 'charge' AND request_id IN "
                          "(SELECT id FROM jobs WHERE batch_id = %s)", batch.id)[0]
    with cluster.client(a, key) as http:
        account = http.get("/v1/account").json()["credits"]
    assert account["reserved"] == 0
    assert account["balance"] == pytest.approx(50 + float(charged[1]) / 1e9, abs=1e-6)
    assert charged[0] >= counts.succeeded  # each once (a cancelled running one pays too)
    assert charged[1] < 0
    ids = cluster.sql("SELECT request_id, count(*) FROM credit_ledger WHERE kind = 'charge' "
                      "GROUP BY request_id HAVING count(*) > 1")
    assert ids == []
