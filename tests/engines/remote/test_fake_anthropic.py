"""The fake Anthropic API, as the official ``anthropic`` SDK sees it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest
from anthropic.types import TextBlock, ToolUseBlock

from tests.engines.remote._fake_anthropic import (
    ErrorAfter,
    Fail,
    FakeAnthropic,
    Hang,
    Reply,
    ToolUse,
)

KEY = "sk-ant-test"
MODEL = "claude-haiku-5-5"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropic) -> FakeAnthropic:
    server.requests.clear()
    assert server.pending == 0
    return server


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def test_streamed_echo(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    with client.messages.stream(
            model=MODEL, max_tokens=100, system="Be brief.",
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "hello there, "}, {"type": "text", "text": "world"}]}],
    ) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", "hello there, world")]
    assert message.model == MODEL and message.stop_reason == "end_turn"
    assert message.stop_sequence is None and message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)
    assert kinds.count("text") == 3 and kinds[-1] == "message_stop"
    (recorded,) = fake.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/messages")
    assert recorded.headers["authorization"] == f"Bearer {KEY}"  # how the SDK sends the key
    assert "anthropic-version" in recorded.headers
    assert recorded.body is not None and recorded.body["stream"] is True


def test_raw_stream_events(fake: FakeAnthropic) -> None:
    fake.script(Reply("one two three", delay=0.01))
    body = {"model": MODEL, "max_tokens": 2, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    response = httpx.post(f"{fake.url}/v1/messages", json=body, headers=headers)
    assert response.status_code == 200 and response.headers["request-id"].startswith("req_")
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [line.removeprefix("event: ") for line in response.text.splitlines()
             if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
    assert '"stop_reason":"max_tokens"' in response.text
    assert '"usage":{"input_tokens":1,' in response.text and '"output_tokens":1,' in response.text


def test_tool_use(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    weather = {"city": "Paris", "days": [1, 2], "units": {"temp": "C"}}
    fake.script(Reply("Checking.", tool_uses=(ToolUse("get_weather", weather, id="toolu_1"),)))
    tools = [{"name": "get_weather", "description": "Weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    with client.messages.stream(model=MODEL, max_tokens=50, tools=tools,  # type: ignore[arg-type]
                                messages=[{"role": "user", "content": "weather?"}]) as stream:
        message = stream.get_final_message()
    text, tool = message.content
    assert isinstance(text, TextBlock) and text.text == "Checking."
    assert isinstance(tool, ToolUseBlock)
    assert (tool.id, tool.name, tool.input) == ("toolu_1", "get_weather", weather)
    assert message.stop_reason == "tool_use"


def test_whole_message_and_stop_sequence(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=10, stop_sequences=["STOP"],
                                     messages=[{"role": "user", "content": "a b STOP c"}])
    assert message.content == [TextBlock(type="text", text="a b ")]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")
    assert client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "a b c"}]).input_tokens == 3
    assert next(m.id for m in client.models.list()).startswith("claude-")


def test_fail(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(Fail(529, "overloaded_error", retry_after=2))
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model=MODEL, max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 529
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")
    assert caught.value.body == {"type": "error", "request_id": caught.value.request_id,
                                 "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_refusals_consume_no_step(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(Reply("scripted"))
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=fake.url, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model=MODEL, max_tokens=0,
                               messages=[{"role": "user", "content": "hi"}])
    message = client.messages.create(model=MODEL, max_tokens=10,
                                     messages=[{"role": "user", "content": "hi"}])
    assert message.content == [TextBlock(type="text", text="scripted")]


def test_error_after(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(ErrorAfter("partial answer"))
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"), \
            client.messages.stream(model=MODEL, max_tokens=10,
                                   messages=[{"role": "user", "content": "hi"}]) as stream:
        texts.extend(stream.text_stream)
    assert "".join(texts) == "partial answer"


def test_hang_until_the_client_leaves(fake: FakeAnthropic) -> None:
    fake.script(Hang())
    body = {"model": MODEL, "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{fake.url}/v1/messages", json=body, headers=headers) as response:
        lines = response.iter_lines()  # held: dropping it would close the connection
        assert next(lines) == "event: message_start"
        time.sleep(0.2)
        assert fake.inflight == 1
    deadline = time.monotonic() + 5
    while fake.inflight:
        assert time.monotonic() < deadline, "the hanging response outlived its client"
        time.sleep(0.02)
    assert fake.max_inflight >= 1
