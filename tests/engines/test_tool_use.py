"""Tool use on the packaged default model (Qwen2.5-Coder 1.5B Instruct on llama.cpp), driven
by the official SDKs' own tool loops: its template renders the tools, a grammar keeps each
call's arguments to the tool's schema, the calls are taken out of the text as it streams."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import jsonschema
import openai
import pytest

from tests._server import ServerProcess

CONFIG = """
[server]
sync_timeout = 300

[[models]]
slug = "qwen2.5-coder-1.5b-instruct"
aliases = ["claude-3-haiku"]
engine = "llamacpp"
weights = "package:qwen2.5-coder-1.5b-instruct"
context_length = 2048
max_output_tokens = 512
default_max_tokens = 256
batch_slots = 2
sampling = { temperature = 0.7, top_p = 0.8, top_k = 20, repeat_penalty = 1.05 }
capabilities = { tools = true }
"""
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}},
                  "required": ["city"]}
WEATHER = {"name": "get_weather", "description": "Get the current weather in a city.",
           "input_schema": WEATHER_SCHEMA}
QUESTION = {"role": "user", "content": "What's the weather in Paris?"}
GREEDY = {"temperature": 0}  # current Anthropic SDKs have no temperature argument


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("qwen"), CONFIG).start(timeout=600)
    yield proc
    proc.kill()


@pytest.fixture
def claude(qwen: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=qwen.url, api_key=qwen.key, max_retries=0,
                               timeout=300)


def _answer_with(claude: anthropic.Anthropic, call: anthropic.types.ToolUseBlock,
                 first: list) -> anthropic.types.Message:
    # a 1.5B model offered the tool again tends to call it again: the loop's last step says
    # "answer now" with tool_choice none, as an agent does when it wants the final answer
    return claude.messages.create(
        model="claude-3-haiku", max_tokens=80, extra_body=GREEDY, tools=[WEATHER],
        tool_choice={"type": "none"}, messages=[
            QUESTION, {"role": "assistant", "content": first},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                          "content": "18 degrees Celsius and sunny"}]}])


def test_the_anthropic_tool_loop_runs_on_the_default_model(
        claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(model="claude-3-haiku", max_tokens=120, extra_body=GREEDY,
                                   tools=[WEATHER], messages=[QUESTION])
    assert first.stop_reason == "tool_use", first
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.id.startswith("toolu_")
    jsonschema.validate(call.input, WEATHER_SCHEMA)
    assert "paris" in str(call.input["city"]).lower()  # type: ignore[index]
    final = _answer_with(claude, call, first.content)
    assert final.stop_reason == "end_turn"
    assert "18" in final.content[0].text  # type: ignore[union-attr]


def test_a_streamed_tool_call_arrives_whole(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-3-haiku", max_tokens=120, extra_body=GREEDY,
                                tools=[WEATHER], messages=[QUESTION]) as stream:
        events = [event.type for event in stream]
        message = stream.get_final_message()
    assert "input_json" in events and message.stop_reason == "tool_use"
    call = next(b for b in message.content if b.type == "tool_use")
    jsonschema.validate(call.input, WEATHER_SCHEMA)
    assert not any("<tool_call>" in getattr(b, "text", "") for b in message.content)


def test_a_required_tool_is_called(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-3-haiku", max_tokens=120, tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Tell me a joke about Rome."}])
    calls = [b for b in message.content if b.type == "tool_use"]
    assert message.stop_reason == "tool_use" and calls, message
    jsonschema.validate(calls[0].input, WEATHER_SCHEMA)


def test_the_openai_tool_loop_runs_on_the_default_model(qwen: ServerProcess) -> None:
    gpt = openai.OpenAI(base_url=qwen.url + "/v1", api_key=qwen.key, max_retries=0,
                        timeout=300)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"],
        "parameters": WEATHER_SCHEMA}}]
    first = gpt.chat.completions.create(model="claude-3-haiku", temperature=0, max_tokens=120,
                                        tools=tools, messages=[QUESTION])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", first
    call = choice.message.tool_calls[0]  # type: ignore[index]
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_SCHEMA)
    final = gpt.chat.completions.create(
        model="claude-3-haiku", temperature=0, max_tokens=80, tools=tools, tool_choice="none",
        messages=[
            QUESTION, choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"}])
    assert final.choices[0].finish_reason == "stop"
    assert "18" in (final.choices[0].message.content or "")
