"""The OpenAI engine's mapping both ways: our request as a chat-completions body, and a
stream in OpenAI's chunk format (as vLLM sends it, tool calls included) as our events."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from stratus.config import ModelConfig
from stratus.engines import (
    ChatMessage,
    EngineBusy,
    Finished,
    GenerationRequest,
    ImagePart,
    TextDelta,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
)
from stratus.engines._options import OpenAIOptions
from stratus.engines.remote import OpenAIEngine, UpstreamError
from stratus.engines.remote._upstream import Refused

pytestmark = pytest.mark.anyio

WEATHER = ToolSpec(name="get_weather", description="The weather in a city",
                   input_schema={"type": "object", "properties": {"city": {"type": "string"}}})


def engine(**options: Any) -> OpenAIEngine:
    settings = {"base_url": "http://upstream.invalid/v1", "model": "up", **options}
    return OpenAIEngine(ModelConfig(slug="m", engine="openai", options=settings),
                        OpenAIOptions.model_validate(settings))


def sse(*chunks: dict[str, Any] | str) -> httpx.Response:
    body = "".join(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks)
    return httpx.Response(200, content=body.encode(),
                          headers={"content-type": "text/event-stream"})


def choice(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]}


async def events(response: httpx.Response, request: GenerationRequest) -> list[Any]:
    return [e async for e in engine().read(response, request, 7)]


def ask(text: str = "hi", **kw: Any) -> GenerationRequest:
    return GenerationRequest(max_tokens=16, messages=(
        ChatMessage(role="user", parts=(TextPart(text=text),)),), **kw)


def test_a_conversation_with_tools_and_images_as_a_chat_completions_body() -> None:
    request = GenerationRequest(
        system="Be brief.", max_tokens=32, temperature=0.3, seed=5, stop_sequences=("END",),
        tools=(WEATHER,), tool_choice=ToolChoice(type="tool", name="get_weather",
                                                 disable_parallel_tool_use=True),
        messages=(
            ChatMessage(role="user", parts=(
                TextPart(text="Weather here?"),
                ImagePart(media_type="image/png", data="iVBORw0KGgo="))),
            ChatMessage(role="assistant", parts=(
                ToolUsePart(id="call_1", name="get_weather", input={"city": "Oslo"}),)),
            ChatMessage(role="user", parts=(
                ToolResultPart(tool_use_id="call_1", is_error=False, content=(
                    TextPart(text="-3 C"), ImagePart(media_type="image/png", data="AAAA"))),
                TextPart(text="Warmer anywhere?"))),
            ChatMessage(role="assistant", parts=(TextPart(text=""),)),  # an empty prefill
        ))
    body = engine().body(request)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "Weather here?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
        {"role": "user", "content": [  # a tool message holds text only: its image follows
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "Warmer anywhere?"}]},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": WEATHER.input_schema}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})
    assert (body["max_tokens"], body["temperature"], body["seed"], body["stop"]) == \
        (32, 0.3, 5, ["END"])
    assert "top_p" not in body and "top_k" not in body  # left to the upstream
    assert "top_k" not in engine().body(ask(top_k=0))  # 0: the whole vocabulary


@pytest.mark.parametrize(("kind", "wire"), [("auto", "auto"), ("any", "required"),
                                            ("none", "none")])
def test_tool_choice_names_map_to_openais(kind: str, wire: str) -> None:
    body = engine().body(ask(tools=(WEATHER,), tool_choice=ToolChoice(type=kind)))
    assert body["tool_choice"] == wire and "parallel_tool_calls" not in body


async def test_usage_comes_from_the_final_chunk() -> None:
    got = await events(sse(choice({"role": "assistant"}), choice({"content": "Hel"}),
                           choice({"content": "lo"}), choice({}, "length"),
                           {"choices": [], "usage": {"prompt_tokens": 11,
                                                     "completion_tokens": 2,
                                                     "prompt_tokens_details": {
                                                         "cached_tokens": 8}}},
                           "[DONE]"), ask())
    assert [e.text for e in got if isinstance(e, TextDelta)] == ["Hel", "lo"]
    assert got[-1] == Finished(stop_reason="max_tokens", input_tokens=11, output_tokens=2,
                               cached_input_tokens=8)


async def test_without_usage_the_pieces_are_counted() -> None:
    got = await events(sse(choice({"content": "a"}), choice({"content": "b"}),
                           choice({"content": "c"}, "stop"), "[DONE]"), ask())
    assert got[-1] == Finished(stop_reason="end_turn", input_tokens=7, output_tokens=3)


async def test_a_stop_sequence_is_found_here_and_the_stream_left() -> None:
    got = await events(sse(choice({"content": "one EN"}), choice({"content": "D two"}),
                           choice({"content": " three"}, "length"), "[DONE]"),
                       ask(stop_sequences=("END",)))
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "one "
    assert got[-1].stop_reason == "stop_sequence" and got[-1].stop_sequence == "END"


async def test_vllms_stop_reason_names_the_stop_sequence() -> None:
    got = await events(sse(choice({"content": "done"}), choice({}, "stop", stop_reason="###"),
                           "[DONE]"), ask(stop_sequences=("###",)))
    assert (got[-1].stop_reason, got[-1].stop_sequence) == ("stop_sequence", "###")


async def test_streamed_tool_calls_become_whole_calls() -> None:
    got = await events(sse(
        choice({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]}),
        choice({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        choice({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                "function": {"name": "get_weather",
                                             "arguments": '{"city": "Rome"}'}}]}),
        choice({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
        choice({}, "tool_calls"), "[DONE]"), ask(tools=(WEATHER,)))
    assert [e for e in got if isinstance(e, ToolCall)] == [
        ToolCall(id="call_a", name="get_weather", input={"city": "Paris"}),
        ToolCall(id="call_b", name="get_weather", input={"city": "Rome"})]
    assert got[-1].stop_reason == "tool_use"


async def test_arguments_that_are_not_a_json_object_fail_the_job() -> None:
    with pytest.raises(UpstreamError, match="not a JSON object"):
        await events(sse(choice({"tool_calls": [{"index": 0, "id": "c", "function": {
            "name": "get_weather", "arguments": "{oops"}}]}), choice({}, "tool_calls"),
            "[DONE]"), ask(tools=(WEATHER,)))


async def test_a_stream_that_ends_before_it_finishes_may_be_retried() -> None:
    with pytest.raises(Refused, match="before it finished"):
        await events(sse(choice({"content": "a"})), ask())


@pytest.mark.parametrize(("error", "expected"), [
    ({"message": "Server overloaded", "type": "overloaded_error"}, Refused),
    ({"message": "bad prompt", "type": "invalid_request_error", "code": 400}, UpstreamError),
])
async def test_an_error_inside_the_stream(error: dict[str, Any], expected: type) -> None:
    with pytest.raises(expected, match=error["message"]):
        await events(sse({"error": error}), ask())


async def test_an_upstream_that_cannot_be_reached_hands_the_job_back() -> None:
    unreachable = engine(base_url="http://127.0.0.1:9/v1", connect_timeout=2)
    await unreachable.start()
    try:
        with pytest.raises(EngineBusy, match="cannot reach the upstream"):
            async for _ in unreachable.generate(ask()):
                pass
    finally:
        await unreachable.close()


async def test_tool_calls_ended_with_stop_are_a_tool_use() -> None:
    got = await events(sse(
        choice({"tool_calls": [{"index": 0, "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}),
        choice({}, "stop"), "[DONE]"), ask(tools=(WEATHER,)))
    call = next(e for e in got if isinstance(e, ToolCall))
    assert call.id.startswith("toolu_") and len(call.id) > 10  # the upstream gave none
    assert got[-1].stop_reason == "tool_use"
    assert got[-1].output_tokens == 1  # no usage: the pieces of the call are counted


async def test_a_tool_call_cut_by_max_tokens_is_left_out() -> None:
    got = await events(sse(
        choice({"content": "Let me see."}),
        choice({"tool_calls": [{"index": 0, "id": "c", "function": {
            "name": "get_weather", "arguments": '{"ci'}}]}),
        choice({}, "length"), "[DONE]"), ask(tools=(WEATHER,)))
    assert not [e for e in got if isinstance(e, ToolCall)]
    assert got[-1].stop_reason == "max_tokens"
