"""The SDK against a live server, as its users call it: sync and async."""

from __future__ import annotations

import time

import pytest

import stratus
from tests._server import ServerProcess
from tests.conftest import words

PAYLOAD = {
    "instruction": "You are a helpful assistant.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


@pytest.fixture
def client(server: ServerProcess):
    with stratus.Client(api_key=server.key, base_url=server.url) as c:
        yield c


def test_module_level_calls_from_environment(server: ServerProcess, monkeypatch) -> None:
    monkeypatch.setenv("STRATUS_API_KEY", server.key)
    monkeypatch.setenv("STRATUS_BASE_URL", server.url)
    monkeypatch.setattr("stratus.client._module._default", None)
    reply = stratus.chat("claude-3-haiku", **PAYLOAD)
    assert reply.text == "What is the capital of France?"
    assert reply.stop_reason == "end_turn"
    assert reply.usage.output_tokens == 6
    assert reply.model == "claude-3-haiku"
    assert reply.raw["type"] == "message"
    assert reply.metrics["output_tokens"] == 6
    job = stratus.submit_chat("claude-3-haiku", **PAYLOAD)
    assert job.request_id
    assert job.wait(timeout=600).text == reply.text
    assert stratus.chat_sync("claude-3-haiku", **PAYLOAD).text == reply.text


def test_job_handle(client: stratus.Client) -> None:
    job = client.submit_chat("echo-slow", messages=[{"role": "user", "content": words(5)}])
    first = job.status()
    assert first.request_id == job.request_id
    assert first.status in (stratus.Status.QUEUED, stratus.Status.PROCESSING)
    with pytest.raises(stratus.InferencePending):
        job.result()
    reply = job.wait(timeout=30)
    assert reply.text == words(5)
    assert reply.request_id == job.request_id
    assert job.status().status is stratus.Status.COMPLETED
    assert job.result().text == words(5)
    assert client.job(job.request_id).result().text == words(5)


def test_wait_timeout_raises_inference_timeout(client: stratus.Client) -> None:
    job = client.submit_chat("echo-slow", messages=[{"role": "user", "content": words(40)}])
    started = time.monotonic()
    with pytest.raises(stratus.InferenceTimeout) as info:
        job.wait(timeout=0.5)
    assert info.value.request_id == job.request_id
    assert time.monotonic() - started < 3.5
    job.cancel()


def test_failed_job_raises_inference_failed(client: stratus.Client) -> None:
    job = client.submit_chat("echo-single", messages=[{"role": "user", "content": words(80)}])
    cancelled = job.cancel()
    assert cancelled.status is stratus.Status.FAILED and cancelled.error == "cancelled"
    with pytest.raises(stratus.InferenceFailed) as info:
        job.wait()
    assert info.value.request_id == job.request_id and info.value.error == "cancelled"
    with pytest.raises(stratus.InferenceFailed):
        job.result()
    with pytest.raises(stratus.ConflictError):
        job.cancel()


def test_execution_timeout_raises_inference_failed(client: stratus.Client) -> None:
    with pytest.raises(stratus.InferenceFailed) as info:
        client.chat("echo-timeout", messages=[{"role": "user", "content": words(20)}])
    assert info.value.error_type == "timeout"
    with pytest.raises(stratus.InferenceFailed):
        client.chat_sync("echo-timeout", messages=[{"role": "user", "content": words(20)}])


def test_sync_timeout_raises_inference_timeout_with_request_id(client: stratus.Client) -> None:
    with pytest.raises(stratus.InferenceTimeout) as info:
        client.chat_sync("echo-slow", messages=[{"role": "user", "content": words(30)}])
    reply = client.job(info.value.request_id).wait(timeout=30)
    assert reply.text == words(30)


def test_typed_errors(client: stratus.Client, server: ServerProcess) -> None:
    with pytest.raises(stratus.BadRequestError) as bad:
        client.chat_sync("echo", messages=[])
    assert "at least one message" in bad.value.message
    assert bad.value.request_id
    with pytest.raises(stratus.NotFoundError):
        client.submit_chat("nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(stratus.NotFoundError):
        client.job("no-such-id").status()
    with pytest.raises(stratus.RequestTooLargeError):
        client.submit_chat("echo", messages=[{"role": "user", "content": "x" * 1_100_000}])
    with stratus.Client(api_key="sk-wrong-000000000000", base_url=server.url) as wrong, \
            pytest.raises(stratus.AuthenticationError):
        wrong.models()
    with pytest.raises(stratus.StratusError, match="no API key"):
        stratus.Client(api_key="", base_url=server.url)


def test_models(client: stratus.Client) -> None:
    slugs = {m["slug"] for m in client.models()}
    assert {"echo", "echo-slow", "echo-vision"} <= slugs


@pytest.mark.anyio
async def test_async_client(server: ServerProcess) -> None:
    async with stratus.AsyncClient(api_key=server.key, base_url=server.url) as client:
        reply = await client.chat("claude-3-haiku", **PAYLOAD)
        assert reply.text == "What is the capital of France?"
        assert (await client.chat_sync("echo", **PAYLOAD)).text == reply.text
        job = await client.submit_chat("echo-slow",
                                       messages=[{"role": "user", "content": words(40)}])
        with pytest.raises(stratus.InferenceTimeout):
            await job.wait(timeout=0.3)
        status = await job.cancel()
        assert status.status is stratus.Status.FAILED
        with pytest.raises(stratus.InferenceFailed):
            await job.wait()
        with pytest.raises(stratus.InferenceFailed):
            await job.result()
        with pytest.raises(stratus.BadRequestError):
            await client.submit_chat("echo", messages=[{"role": "user", "content": "x"}],
                                     temperature=3)
        assert {m["slug"] for m in await client.models()} >= {"echo"}
