"""The Anthropic surface, driven by the official ``anthropic`` SDK as its users call it."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests._server import ServerProcess
from tests.api.test_segmind import wait_status


@pytest.fixture
def client(server: ServerProcess):
    with anthropic.Anthropic(api_key=server.key, base_url=server.url, max_retries=0) as c:
        yield c


def test_messages_create(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-3-haiku", max_tokens=64, system="You are terse.",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        metadata={"user_id": "u-1"})
    assert isinstance(message, anthropic.types.Message)
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "claude-3-haiku"
    assert message.content[0].text == "What is the capital of France?"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 9 and message.usage.output_tokens == 6
    assert message._request_id  # read from the request-id header


def test_system_blocks_stop_sequences_and_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="echo", max_tokens=64, system=[{"type": "text", "text": "be brief"}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "one two END three"}]}],
        stop_sequences=["END"])
    assert message.content[0].text == "one two "
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "END"
    message = client.messages.create(model="echo", max_tokens=2,
                                     messages=[{"role": "user", "content": "a b c d"}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


def test_request_id_finds_the_job_on_the_queue_surface(client: anthropic.Anthropic,
                                                       server: ServerProcess) -> None:
    message = client.messages.create(model="echo", max_tokens=8,
                                     messages=[{"role": "user", "content": "same job"}])
    with server.client() as api:
        result = api.get(f"/v2/requests/{message._request_id}")
    assert result.status_code == 200 and '"same job"' in result.json()["output"]


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model="claude-3-haiku", system="be brief",
        messages=[{"role": "user", "content": "one two three"}])
    assert counted.input_tokens == 5
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])


def test_error_classes(client: anthropic.Anthropic, server: ServerProcess) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="echo", max_tokens=0,
                               messages=[{"role": "user", "content": "x"}])
    assert "max_tokens must be at least 1" in bad.value.message
    with pytest.raises(anthropic.BadRequestError, match="has no extended thinking"):
        client.messages.create(model="echo", max_tokens=5,
                               thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "a"}])
    with pytest.raises(anthropic.NotFoundError, match="unknown model 'claude-9'"):
        client.messages.create(model="claude-9", max_tokens=5,
                               messages=[{"role": "user", "content": "x"}])
    wrong = anthropic.Anthropic(api_key="sk-wrong-0000000000", base_url=server.url,
                                max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="echo", max_tokens=5,
                              messages=[{"role": "user", "content": "x"}])


def test_failed_job_is_an_error(client: anthropic.Anthropic) -> None:
    words = " ".join(f"w{i}" for i in range(20))
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="echo-timeout", max_tokens=50,
                               messages=[{"role": "user", "content": words}])
    assert info.value.status_code == 504 and "execution timeout" in info.value.message


@pytest.mark.parametrize(("body", "status", "kind", "needle"), [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 400,
     "invalid_request_error", "model is required"),
    ({"model": "echo", "messages": [{"role": "user", "content": "x"}]}, 400,
     "invalid_request_error", "max_tokens is required"),
    ({"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "prompt": "y"}, 400, "invalid_request_error", "unknown field 'prompt'"),
    ({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 404,
     "not_found_error", "unknown model"),
])
def test_error_shape(server: ServerProcess, body: dict, status: int, kind: str,
                     needle: str) -> None:
    response = httpx.post(server.url + "/v1/messages", json=body,
                          headers={"x-api-key": server.key, "anthropic-version": "2023-06-01"})
    assert response.status_code == status
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == kind
    assert needle in payload["error"]["message"]
    assert response.headers["request-id"]


def test_missing_key_in_anthropic_shape(server: ServerProcess) -> None:
    response = httpx.post(server.url + "/v1/messages", json={})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.headers["request-id"]


def test_queue_full_is_429_with_retry_after(client: anthropic.Anthropic,
                                             server: ServerProcess) -> None:
    long = {"messages": [{"role": "user", "content": " ".join(["w"] * 200)}]}
    with server.client() as api:
        ids = [api.post("/v2/echo-single", json=long).json()["request_id"]]
        try:
            wait_status(api, ids[0], {"PROCESSING"})
            ids += [api.post("/v2/echo-single", json=long).json()["request_id"]
                    for _ in range(3)]
            refused = api.post("/v2/echo-single", json=long)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert "queue full" in refused.json()["error"]
            with pytest.raises(anthropic.RateLimitError, match="queue full"):
                client.messages.create(model="echo-single", max_tokens=5,
                                       messages=[{"role": "user", "content": "x"}])
        finally:
            for rid in ids:
                api.post(f"/v2/requests/{rid}/cancel")
