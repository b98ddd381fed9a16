"""The Message Batches API on the shared server (echo models), through the official SDK."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests._server import ServerProcess
from tests.conftest import SERVER_CONFIG, eventually, new_key, words


def _sdk(server: ServerProcess, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=server.url, max_retries=0)


@pytest.fixture
def account(api: httpx.Client) -> tuple[str, str]:
    """A fresh account (50 USD) and its key: its history holds only this test's requests."""
    name = f"batch-{uuid.uuid4().hex[:8]}"
    return name, new_key(api, name, credits=50)


def _item(custom_id: str, text: str, model: str = "echo", **params: Any) -> dict[str, Any]:
    return {"custom_id": custom_id,
            "params": {"model": model, "max_tokens": 64,
                       "messages": [{"role": "user", "content": text}], **params}}


def _history(server: ServerProcess, key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    after: str | None = None
    with server.client(key) as http:
        while True:
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["after_id"] = after
            page = http.get("/v1/requests", params=params).json()
            entries += page["data"]
            if not page["has_more"]:
                return entries
            after = page["last_id"]


def _completed(server: ServerProcess, key: str) -> int:
    with server.client(key) as http:
        return len(http.get("/v1/requests", params={"status": "COMPLETED",
                                                    "limit": 100}).json()["data"])


def _ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 120) -> Any:
    assert eventually(lambda: client.messages.batches.retrieve(batch_id).processing_status
                      == "ended", timeout), "the batch did not end"
    return client.messages.batches.retrieve(batch_id)


def test_a_batch_cancelled_half_way_reports_every_request_as_history_does(
        server: ServerProcess, api: httpx.Client, account: tuple[str, str]) -> None:
    name, key = account
    client = _sdk(server, key)
    texts = {f"r{i}": f"item{i} " + words(20) for i in range(200)}
    batch = client.messages.batches.create(
        requests=[_item(cid, text, model="echo-priced") for cid, text in texts.items()])
    assert batch.type == "message_batch"
    assert batch.id.startswith("msgbatch_")
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 200
    assert batch.results_url is None

    assert eventually(lambda: _completed(server, key) >= 40, 60)
    cancelled = client.messages.batches.cancel(batch.id)
    assert cancelled.processing_status in ("canceling", "ended")
    assert cancelled.cancel_initiated_at is not None

    ended = _ended(client, batch.id)
    counts = ended.request_counts
    assert counts.processing == 0
    assert counts.succeeded >= 40
    assert counts.canceled > 0
    assert counts.succeeded + counts.canceled == 200
    assert counts.errored == counts.expired == 0
    assert ended.ended_at is not None
    assert ended.results_url == f"{server.url}/v1/messages/batches/{batch.id}/results"

    results = list(client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == sorted(texts)
    succeeded = [r for r in results if r.result.type == "succeeded"]
    assert len(succeeded) == counts.succeeded
    assert sum(r.result.type == "canceled" for r in results) == counts.canceled
    for line in succeeded:
        message = line.result.message  # type: ignore[union-attr]
        assert message.content[0].text == texts[line.custom_id]  # echo: the prompt back
        assert message.model == "echo-priced"
        assert message.stop_reason == "end_turn"

    history = _history(server, key)
    assert len(history) == 200
    done = [e for e in history if e["status"] == "COMPLETED"]
    stopped = [e for e in history if e["status"] == "FAILED"]
    assert len(done) == counts.succeeded
    assert len(stopped) == counts.canceled
    assert {e["error_type"] for e in stopped} == {"cancelled"}
    assert sum(e["output_tokens"] for e in done) == sum(
        r.result.message.usage.output_tokens for r in succeeded)  # type: ignore[union-attr]
    charged = sum(e["credits_deduction"] for e in history)
    assert charged > 0
    balance = api.get(f"/v1/admin/accounts/{name}").json()["credits"]
    assert balance["reserved"] == 0  # every reservation was settled or released
    assert balance["balance"] == pytest.approx(50 - charged, abs=1e-6)


def test_interactive_requests_go_before_a_batch(server: ServerProcess,
                                                account: tuple[str, str]) -> None:
    """echo-single runs one request at a time and queues at most 3 interactive ones: a
    batch of 12 neither fills that queue nor makes a new request wait behind it."""
    _, key = account
    client = _sdk(server, key)
    batch = client.messages.batches.create(
        requests=[_item(f"b{i}", words(12), model="echo-single") for i in range(12)])
    with server.client(key) as http:
        assert eventually(lambda: any(e["status"] == "PROCESSING"
                                      for e in _history(server, key)), 30)
        submitted = http.post("/v2/echo-single", json={
            "messages": [{"role": "user", "content": "me first"}]})
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()["queue_position"] == 1
        status = http.get(f"/v2/requests/{submitted.json()['request_id']}/status",
                          params={"wait": 30}).json()
        assert eventually(lambda: http.get(
            f"/v2/requests/{submitted.json()['request_id']}/status").json()["status"]
            == "COMPLETED", 30), status
    queued = [e for e in _history(server, key) if e["status"] == "QUEUED"]
    assert queued, "the interactive request waited for the whole batch"
    client.messages.batches.cancel(batch.id)
    _ended(client, batch.id)


def test_each_invalid_request_errors_alone(server: ServerProcess,
                                           account: tuple[str, str]) -> None:
    _, key = account
    client = _sdk(server, key)
    batch = client.messages.batches.create(requests=[
        _item("good", "fine"),
        _item("no-model", "x", model="no-such-model"),
        _item("streamed", "x", stream=True),
        {"custom_id": "no-max-tokens",
         "params": {"model": "echo", "messages": [{"role": "user", "content": "x"}]}},
        _item("unknown-field", "x", colour="blue"),
        _item("too-long", words(40), model="echo-small", max_tokens=4),
        _item("blocked", "a forbidden word"),
    ])
    ended = _ended(client, batch.id)
    assert ended.request_counts.succeeded == 1
    assert ended.request_counts.errored == 6
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["good"].type == "succeeded"
    errors = {cid: r.error.error for cid, r in results.items()  # type: ignore[union-attr]
              if r.type == "errored"}
    assert errors["no-model"].type == "not_found_error"
    assert "no-such-model" in errors["no-model"].message
    assert "stream" in errors["streamed"].message
    assert "max_tokens" in errors["no-max-tokens"].message
    assert "colour" in errors["unknown-field"].message
    assert errors["too-long"].type == "invalid_request_error"
    assert "context" in errors["too-long"].message
    assert "test-words" in errors["blocked"].message or "policy" in errors["blocked"].message
    for cid in ("no-max-tokens", "unknown-field", "too-long", "blocked", "streamed"):
        assert errors[cid].type == "invalid_request_error"


@pytest.mark.parametrize(("body", "says"), [
    ({"requests": []}, "requests"),
    ({"requests": [{"custom_id": "has space", "params": {}}]}, "custom_id"),
    ({"requests": [{"custom_id": "a" * 65, "params": {}}]}, "custom_id"),
    ({"requests": [_item("same", "x"), _item("same", "y")]}, "unique"),
    ({"requests": [{"custom_id": "a", "params": "text"}]}, "params"),
    ({"requests": [_item("a", "x")], "colour": "blue"}, "colour"),
    ({}, "requests"),
])
def test_a_malformed_batch_is_refused_whole(server: ServerProcess, account: tuple[str, str],
                                           body: dict[str, Any], says: str) -> None:
    _, key = account
    with server.client(key) as http:
        response = http.post("/v1/messages/batches", json=body)
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
        assert says in error["error"]["message"]
        assert response.headers["request-id"]
        assert http.get("/v1/messages/batches").json()["data"] == []
    assert _history(server, key) == []


def test_a_batch_the_credits_cannot_cover_is_refused_whole(server: ServerProcess,
                                                            api: httpx.Client) -> None:
    name = f"poor-{uuid.uuid4().hex[:8]}"
    key = new_key(api, name, credits=0.01)
    client = _sdk(server, key)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.batches.create(requests=[
            _item(f"r{i}", "x", model="echo-priced", max_tokens=10) for i in range(5)])
    assert caught.value.status_code == 406
    assert "the batch's 5 requests may cost up to" in caught.value.message
    assert client.messages.batches.list().data == []
    assert _history(server, key) == []
    assert api.get(f"/v1/admin/accounts/{name}").json()["credits"]["reserved"] == 0


def test_list_retrieve_delete_and_other_accounts(server: ServerProcess, api: httpx.Client,
                                                account: tuple[str, str]) -> None:
    _, key = account
    client = _sdk(server, key)
    made = [client.messages.batches.create(requests=[_item("only", f"n{i}")]).id
            for i in range(3)]
    listed = [b.id for b in client.messages.batches.list(limit=2)]  # pages through all
    assert listed == made[::-1]  # newest first
    first = client.messages.batches.list(limit=2)
    assert first.has_more and first.first_id == made[2] and first.last_id == made[1]
    newer = client.messages.batches.list(limit=5, before_id=made[0])
    assert [b.id for b in newer.data] == [made[2], made[1]]

    stranger = _sdk(server, new_key(api, f"other-{uuid.uuid4().hex[:8]}"))
    with pytest.raises(anthropic.NotFoundError):
        stranger.messages.batches.retrieve(made[0])
    with pytest.raises(anthropic.NotFoundError):
        stranger.messages.batches.cancel(made[0])
    assert stranger.messages.batches.list().data == []

    _ended(client, made[0])
    deleted = client.messages.batches.delete(made[0])
    assert (deleted.id, deleted.type) == (made[0], "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(made[0])
    with server.client(key) as http:
        response = http.get(f"/v1/messages/batches/{made[0]}/results")
        assert response.status_code == 404


def test_results_and_delete_wait_for_the_end(server: ServerProcess,
                                             account: tuple[str, str]) -> None:
    _, key = account
    client = _sdk(server, key)
    batch = client.messages.batches.create(
        requests=[_item(f"s{i}", words(30), model="echo-slow") for i in range(8)])
    with server.client(key) as http:
        early = http.get(f"/v1/messages/batches/{batch.id}/results")
        assert early.status_code == 400
        assert "in_progress" in early.json()["error"]["message"]
    with pytest.raises(anthropic.BadRequestError, match="cancel it first"):
        client.messages.batches.delete(batch.id)
    client.messages.batches.cancel(batch.id)
    ended = _ended(client, batch.id)
    assert ended.request_counts.canceled > 0
    with server.client(key) as http:
        raw = http.get(f"/v1/messages/batches/{batch.id}/results")
        assert raw.status_code == 200
        lines = [json.loads(line) for line in raw.text.splitlines()]
        assert [line["custom_id"] for line in lines] == [f"s{i}" for i in range(8)]


EXPIRING = SERVER_CONFIG.replace("[server]", "[server]\nsweep_interval = 0.5") + """
[batches]
expire_after = 1
"""


@pytest.fixture
def expiring(make_server) -> Iterator[ServerProcess]:
    yield make_server(EXPIRING)


def test_requests_not_run_when_the_batch_expires_end_expired(expiring: ServerProcess) -> None:
    client = _sdk(expiring, expiring.key)
    batch = client.messages.batches.create(
        requests=[_item(f"e{i}", words(20), model="echo-single") for i in range(10)])
    ended = _ended(client, batch.id, timeout=60)
    counts = ended.request_counts
    assert counts.expired > 0
    assert counts.succeeded + counts.expired + counts.canceled == 10
    results = {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}
    assert "expired" in results.values()
    with expiring.client() as http:
        history = http.get("/v1/requests", params={"limit": 100}).json()["data"]
    expired = [e for e in history if e.get("error_type") == "expired"]
    assert len(expired) == counts.expired
    assert all(e["credits_deduction"] == 0 for e in expired)
