"""The Anthropic engine against a local server that speaks Anthropic's Messages API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from stratus.config import ModelConfig
from stratus.engines import (
    ChatMessage,
    EngineBusy,
    Finished,
    GenerationRequest,
    ImagePart,
    RequestRejected,
    TextDelta,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
)
from stratus.engines._options import AnthropicOptions
from stratus.engines.remote import AnthropicEngine, UpstreamError
from tests.engines.remote._fake_anthropic import (
    ErrorAfter,
    Fail,
    FakeAnthropic,
    Hang,
    Reply,
    ToolUse,
)
from tests.images import png_b64

pytestmark = pytest.mark.anyio

KEY_ENV = "STRATUS_TEST_ANTHROPIC_KEY"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key="sk-ant-test") as server:
        yield server


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch, fake: FakeAnthropic) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-ant-test")
    fake.requests.clear()


def engine_for(fake: FakeAnthropic, **options: object) -> AnthropicEngine:
    settings = {"base_url": fake.url, "model": "claude-3-5-haiku-latest",
                "api_key_env": KEY_ENV, "cooldown": 0.2, "max_cooldown": 0.4, **options}
    config = ModelConfig(slug="claude", engine="anthropic", options=settings)
    return AnthropicEngine(config, AnthropicOptions.model_validate(settings))


def ask(text: str = "hello there world", **kw: object) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage(role="user", parts=(TextPart(text=text),)),),
                             max_tokens=kw.pop("max_tokens", 64), **kw)  # type: ignore[arg-type]


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds (looked at every 20 ms)."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def collect(engine: AnthropicEngine,
                  request: GenerationRequest) -> tuple[list[TextDelta], Finished]:
    deltas: list[TextDelta] = []
    finished = None
    async for event in engine.generate(request):
        if isinstance(event, TextDelta):
            deltas.append(event)
        else:
            finished = event
    assert finished is not None
    return deltas, finished


async def test_text_streams_with_anthropics_usage(fake: FakeAnthropic) -> None:
    engine = engine_for(fake)
    await engine.start()
    try:
        fake.script(Reply(text="one two three four", input_tokens=17))
        deltas, done = await collect(engine, ask(system="be brief", stop_sequences=("zzz",),
                                                 temperature=0.5, top_k=5))
    finally:
        await engine.close()
    assert "".join(d.text for d in deltas) == "one two three four"
    assert len(deltas) == 4  # streamed, not in one piece
    assert (done.stop_reason, done.input_tokens, done.output_tokens) == ("end_turn", 17, 4)
    sent = fake.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body is not None
    assert sent.body["stream"] is True
    assert sent.body["model"] == "claude-3-5-haiku-latest"
    assert sent.body["system"] == "be brief"
    assert sent.body["stop_sequences"] == ["zzz"]
    assert (sent.body["temperature"], sent.body["top_k"]) == (0.5, 5)
    assert "top_p" not in sent.body  # what the request leaves out, the upstream decides


async def test_stop_reasons_and_stop_sequence_are_anthropics(fake: FakeAnthropic) -> None:
    engine = engine_for(fake)
    await engine.start()
    try:
        _, cut = await collect(engine, ask("a b c d e f", max_tokens=2))
        text, stopped = await collect(engine, ask("alpha beta STOP gamma",
                                                  stop_sequences=("STOP",)))
    finally:
        await engine.close()
    assert (cut.stop_reason, cut.output_tokens) == ("max_tokens", 2)
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "STOP")
    assert "gamma" not in "".join(d.text for d in text)


async def test_images_and_prefill_reach_the_upstream_as_anthropic_blocks(
        fake: FakeAnthropic) -> None:
    data = png_b64(8, 8)
    request = GenerationRequest(max_tokens=16, messages=(
        ChatMessage(role="user", parts=(TextPart(text="what is this"),
                                        ImagePart(media_type="image/png", data=data))),
        ChatMessage(role="assistant", parts=(TextPart(text=""),))))
    engine = engine_for(fake)
    await engine.start()
    try:
        await collect(engine, request)
    finally:
        await engine.close()
    body = fake.requests[-1].body
    assert body is not None
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": data}}]}]  # the empty prefill is left out


@pytest.mark.parametrize(("status", "kind", "retry_after"), [
    (529, "overloaded_error", None), (429, "rate_limit_error", 7.0), (503, "api_error", None)])
async def test_an_overload_before_any_text_hands_the_job_back(
        fake: FakeAnthropic, status: int, kind: str, retry_after: float | None) -> None:
    engine = engine_for(fake)
    await engine.start()
    try:
        fake.script(Fail(status, kind, retry_after=retry_after))
        with pytest.raises(EngineBusy, match=f"HTTP {status}") as busy:
            await collect(engine, ask())
        deltas, _ = await collect(engine, ask("then it works"))  # the next one goes through
    finally:
        await engine.close()
    assert busy.value.retry_after == (retry_after or 1.0)
    assert "".join(d.text for d in deltas) == "then it works"


async def test_an_error_event_before_text_hands_back_and_after_text_fails(
        fake: FakeAnthropic) -> None:
    engine = engine_for(fake)
    await engine.start()
    try:
        fake.script(ErrorAfter(text=""))
        with pytest.raises(EngineBusy, match="overloaded_error"):
            await collect(engine, ask())
        fake.script(ErrorAfter(text="half an answer", error_type="api_error",
                               message="Internal server error"))
        seen: list[str] = []
        with pytest.raises(UpstreamError, match="api_error: Internal server error"):
            async for event in engine.generate(ask()):
                if isinstance(event, TextDelta):
                    seen.append(event.text)
    finally:
        await engine.close()
    assert "".join(seen) == "half an answer"


async def test_a_refused_request_fails_as_the_clients_to_fix(fake: FakeAnthropic) -> None:
    engine = engine_for(fake)
    await engine.start()
    try:
        fake.script(Fail(400, "invalid_request_error", message="prompt is too long"))
        with pytest.raises(RequestRejected, match="HTTP 400: prompt is too long"):
            await collect(engine, ask())
    finally:
        await engine.close()


async def test_a_plain_500_is_retried_for_one_job_twice_and_cools_nothing(
        fake: FakeAnthropic) -> None:
    engine = engine_for(fake, cooldown_after=1)
    await engine.start()
    try:
        fake.script(Fail(500, "api_error"))
        with pytest.raises(EngineBusy) as busy:
            await collect(engine, ask())
        assert busy.value.tries == 2
        assert engine.capacity() > 0 and engine.health().state == "ready"
    finally:
        await engine.close()


async def test_a_wrong_key_fails_and_names_the_variable(fake: FakeAnthropic,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-ant-wrong")
    engine = engine_for(fake)
    await engine.start()
    try:
        with pytest.raises(UpstreamError, match=f"HTTP 401.*check the key in {KEY_ENV}"):
            await collect(engine, ask())
    finally:
        await engine.close()


async def test_a_key_variable_that_is_not_set_stops_the_start(
        fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(UpstreamError, match=f"{KEY_ENV} .* is not set"):
        await engine_for(fake).start()


async def test_repeated_failures_cool_the_upstream_down_until_a_probe_answers(
        fake: FakeAnthropic) -> None:
    engine = engine_for(fake, cooldown_after=2, max_concurrency=3)
    await engine.start()
    try:
        assert engine.capacity() == 3
        fake.script(Fail(529, "overloaded_error"), Fail(529, "overloaded_error"))
        for _ in range(2):
            with pytest.raises(EngineBusy):
                await collect(engine, ask())
        health = engine.health()
        assert engine.capacity() == 0  # its jobs wait in the queue
        assert health.state == "cooldown" and "HTTP 529" in (health.reason or "")
        assert health.until is not None and health.until > time.time()
        assert await eventually(lambda: engine.capacity() == 3)
        assert engine.health().state == "ready"
        assert any(r.path == "/v1/models" for r in fake.requests)  # the probe
        fake.script(Fail(529, "overloaded_error"))  # half-open: one failure cools it again
        with pytest.raises(EngineBusy):
            await collect(engine, ask())
        assert engine.capacity() == 0
    finally:
        await engine.close()


async def test_closing_the_stream_closes_the_upstream_request(fake: FakeAnthropic) -> None:
    engine = engine_for(fake)
    await engine.start()
    try:
        fake.script(Hang())
        task = asyncio.create_task(collect(engine, ask()))
        assert await eventually(lambda: fake.inflight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await eventually(lambda: fake.inflight == 0)
    finally:
        await engine.close()


async def test_counting_asks_the_upstream_when_told_to(fake: FakeAnthropic) -> None:
    engine = engine_for(fake, tokenizer="upstream")
    await engine.start()
    try:
        counted = await engine.count_tokens(ask("one two three", system="four five"))
        estimated = await engine_for(fake).count_tokens(ask("one two three", system="four"))
    finally:
        await engine.close()
    assert counted == 5  # the fake counts words
    assert fake.requests[-1].path == "/v1/messages/count_tokens"
    assert estimated > 5  # the estimate errs high: one token per 3 bytes, and the markup


WEATHER = ToolSpec(name="get_weather", description="The weather in a city",
                   input_schema={"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]})


async def test_tools_pass_through_both_ways(fake: FakeAnthropic) -> None:
    history = (
        ChatMessage(role="user", parts=(TextPart(text="Weather in Paris and Rome?"),)),
        ChatMessage(role="assistant", parts=(
            TextPart(text="Let me look."),
            ToolUsePart(id="toolu_1", name="get_weather", input={"city": "Paris"}))),
        ChatMessage(role="user", parts=(
            ToolResultPart(tool_use_id="toolu_1", content=(TextPart(text="18 C, sunny"),)),
            TextPart(text="and Rome?"))),
    )
    request = GenerationRequest(messages=history, max_tokens=64, tools=(WEATHER,),
                                tool_choice=ToolChoice(type="any",
                                                       disable_parallel_tool_use=True))
    fake.script(Reply(text="Checking Rome.",
                      tool_uses=(ToolUse("get_weather", {"city": "Rome", "units": ["C"]},
                                         id="toolu_2"),)))
    engine = engine_for(fake)
    await engine.start()
    try:
        events = [event async for event in engine.generate(request)]
    finally:
        await engine.close()
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls == [ToolCall(id="toolu_2", name="get_weather",
                              input={"city": "Rome", "units": ["C"]})]
    assert isinstance(events[-1], Finished) and events[-1].stop_reason == "tool_use"
    body = fake.requests[-1].body
    assert body is not None
    assert body["tools"] == [WEATHER.model_dump()]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    assert body["messages"][2]["content"][0] == {
        "type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, sunny"}
