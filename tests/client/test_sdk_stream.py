"""SDK streaming against a live server: text deltas as they come, then the whole reply."""

from __future__ import annotations

import pytest

import stratus
from tests._server import ServerProcess
from tests.conftest import words


@pytest.fixture
def client(server: ServerProcess):
    with stratus.Client(api_key=server.key, base_url=server.url) as c:
        yield c


def test_stream_yields_deltas_then_reply(client: stratus.Client) -> None:
    with client.stream("echo-slow", messages=[{"role": "user", "content": words(5)}]) as s:
        pieces = list(s)
    assert len(pieces) == 5 and "".join(pieces) == words(5)
    reply = s.reply
    assert reply.text == words(5) and reply.stop_reason == "end_turn"
    assert reply.usage.output_tokens == 5 and reply.model == "echo-slow"
    assert reply.request_id == s.request_id


def test_module_level_stream(server: ServerProcess, monkeypatch) -> None:
    monkeypatch.setenv("STRATUS_API_KEY", server.key)
    monkeypatch.setenv("STRATUS_BASE_URL", server.url)
    monkeypatch.setattr("stratus.client._module._default", None)
    reply = stratus.stream("claude-3-haiku", prompt="hello stream",
                           max_tokens=1).until_done()
    assert reply.text == "hello" and reply.stop_reason == "max_tokens"


def test_job_stream(client: stratus.Client) -> None:
    job = client.submit_chat("echo-slow", messages=[{"role": "user", "content": words(4)}])
    assert "".join(job.stream()) == words(4)
    assert job.stream().until_done().text == words(4)  # again, after the end


def test_stream_errors(client: stratus.Client) -> None:
    with pytest.raises(stratus.BadRequestError):
        client.stream("echo", messages=[])
    with pytest.raises(stratus.InferenceFailed) as info:
        client.stream("echo-timeout",
                      messages=[{"role": "user", "content": words(20)}]).until_done()
    assert info.value.error_type == "timeout_error" and info.value.request_id


@pytest.mark.anyio
async def test_async_stream(server: ServerProcess) -> None:
    async with stratus.AsyncClient(api_key=server.key, base_url=server.url) as client:
        s = await client.stream("echo-slow", messages=[{"role": "user", "content": words(3)}])
        pieces = [piece async for piece in s]
        assert "".join(pieces) == words(3) and s.reply.usage.output_tokens == 3
        job = await client.submit_chat("echo", messages=[{"role": "user", "content": "a b"}])
        assert (await (await job.stream()).until_done()).text == "a b"
