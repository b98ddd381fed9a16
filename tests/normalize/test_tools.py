"""Tools, tool_choice and tool blocks in history, checked against what the model can do."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratus.config import Capabilities, ModelConfig
from stratus.engines import ImagePart, TextPart, ToolChoice, ToolResultPart, ToolUsePart
from stratus.engines.echo import EchoEngine
from stratus.errors import InvalidRequest
from stratus.models import ModelSpec
from stratus.normalize import check, fit, parse_model
from stratus.protocol.messages import MessagesRequest
from tests.images import image_b64

TOOLS = ModelSpec(ModelConfig(slug="t", capabilities=Capabilities(tools=True, vision=True)),
                  EchoEngine())
PLAIN = ModelSpec(ModelConfig(slug="plain"), EchoEngine())
WEATHER = {"name": "get_weather", "description": "The weather",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
LOOP = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
         "input": {"city": "Paris"}}]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False, "content": [
            {"type": "text", "text": "18 C"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": image_b64()}}]}]},
]


def run(body: dict[str, Any], model: ModelSpec = TOOLS):
    return asyncio.run(fit(check(parse_model(body, MessagesRequest), model), model))


def test_a_tool_loop_becomes_engine_parts() -> None:
    out = run({"messages": LOOP, "tools": [WEATHER],
               "tool_choice": {"type": "tool", "name": "get_weather"}})
    request = out.request
    assert request.tools[0].name == "get_weather"
    assert request.tool_choice == ToolChoice(type="tool", name="get_weather")
    assert request.messages[1].parts[1] == ToolUsePart(id="toolu_1", name="get_weather",
                                                       input={"city": "Paris"})
    result = request.messages[2].parts[0]
    assert isinstance(result, ToolResultPart) and result.tool_use_id == "toolu_1"
    assert result.content[0] == TextPart(text="18 C")
    assert isinstance(result.content[1], ImagePart)
    assert out.input_tokens > 0


def test_a_string_tool_result_is_its_text() -> None:
    body = {"messages": [*LOOP[:2], {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C", "is_error": True}]}]}
    part = run(body).request.messages[2].parts[0]
    assert part == ToolResultPart(tool_use_id="toolu_1", content=(TextPart(text="18 C"),),
                                  is_error=True)


@pytest.mark.parametrize(("body", "needle"), [
    ({"tools": [WEATHER]}, "does not support tools: remove tools and tool_choice"),
    ({"messages": LOOP}, "remove the tool_use block at messages[1].content[1]"),
])
def test_a_model_without_tools_refuses_them(body: dict[str, Any], needle: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(InvalidRequest) as refused:
        run(body, PLAIN)
    assert needle in refused.value.message


@pytest.mark.parametrize(("extra", "needle"), [
    ({"tool_choice": {"type": "auto"}}, "tool_choice was sent without tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "some"}}, "tool_choice.type must be one of"),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}},
     "tool_choice.name must name one of the tools (get_weather)"),
    ({"tools": [WEATHER], "tool_choice": {"type": "auto", "name": "get_weather"}},
     "tool_choice.name is only for tool_choice.type 'tool'"),
    ({"tools": [WEATHER], "tool_choice": {"type": "auto", "extra": 1}},
     "tool_choice: unknown field 'extra'"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].name 'get_weather' is used twice"),
    ({"tools": [{**WEATHER, "input_schema": {"type": "string"}}]},
     'tools[0].input_schema must be a JSON Schema with "type": "object"'),
])
def test_bad_tools_are_400(extra: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        run({"messages": [{"role": "user", "content": "hi"}], **extra})
    assert needle in refused.value.message


@pytest.mark.parametrize(("messages", "needle"), [
    ([{"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "n", "input": {}}]}],
     "messages[0].content[0]: tool_use blocks belong in assistant turns"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "tool_result", "tool_use_id": "x", "content": "r"}]}],
     "messages[1].content[0]: tool_result blocks belong in user turns"),
])
def test_tool_blocks_in_the_wrong_turn_are_400(messages: list[dict[str, Any]],
                                               needle: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        run({"messages": messages, "tools": [WEATHER]})
    assert needle in refused.value.message


@pytest.mark.parametrize(("tools", "needle"), [
    ([{**WEATHER, "name": "get weather!"}], "tools[0].name must be 1 to 64 letters"),
    ([{**WEATHER, "input_schema": {"type": "object", "properties": {
        "p": {"$ref": "#/$defs/Missing"}}}}], "an input_schema cannot be enforced"),
])
def test_tools_a_local_grammar_cannot_keep_are_400(tools: list, needle: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        run({"messages": [{"role": "user", "content": "hi"}], "tools": tools})
    assert needle in refused.value.message


def test_tools_and_a_format_together_are_refused_on_a_local_model() -> None:
    with pytest.raises(InvalidRequest, match="cannot both call tools and answer in a set"):
        run({"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER],
             "output_config": {"format": {"type": "json_schema",
                                          "schema": {"type": "object"}}}})
