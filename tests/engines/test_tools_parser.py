"""Tool calls taken out of a local model's text as it streams, however it is cut."""

from __future__ import annotations

import re

import pytest

from stratus.engines import ToolChoice, ToolSpec
from stratus.engines.llamacpp._tools import CallParser, call_grammar, trigger

CALL = '{"name": "get_weather", "arguments": {"city": "Rome"}}'


def run(pieces: list[str]) -> tuple[str, list]:
    parser = CallParser({"get_weather"})
    text, calls = "", []
    for piece in pieces:
        out, made = parser.feed(piece)
        text += out
        calls += made
    return text + parser.flush(), calls


@pytest.mark.parametrize("whole", [f"<tool_call>\n{CALL}\n</tool_call>",
                                   f"```json\n{CALL}\n```",
                                   f"Let me check.\n<tool_call>\n{CALL}\n</tool_call>"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 1000])
def test_a_call_is_found_however_the_text_is_cut(whole: str, size: int) -> None:
    text, calls = run([whole[i:i + size] for i in range(0, len(whole), size)])
    assert [(c.name, c.input) for c in calls] == [("get_weather", {"city": "Rome"})]
    assert calls[0].id.startswith("toolu_")
    assert text == ("Let me check.\n" if whole.startswith("Let") else "")


def test_a_json_block_that_is_no_call_stays_text() -> None:
    whole = 'Here:\n```json\n{"a": 1}\n```\nDone. <tool'
    text, calls = run([whole[i:i + 4] for i in range(0, len(whole), 4)])
    assert text == whole and not calls


def test_a_call_cut_short_is_dropped() -> None:
    text, calls = run(["<tool_call>\n", '{"name": "get_weather", "argu'])
    assert text == "" and not calls


def test_the_grammar_names_only_the_tool_asked_for() -> None:
    tools = (ToolSpec(name="a", input_schema={"type": "object"}),
             ToolSpec(name="b", input_schema={"type": "object"}))
    grammar = call_grammar(tools, ToolChoice(type="tool", name="b",
                                             disable_parallel_tool_use=True))
    assert '"\\"b\\""' in grammar and '"\\"a\\""' not in grammar
    assert grammar.startswith("root ::= block space\n")  # one call only
    assert "(space block)*" in call_grammar(tools, None)


def test_tool_schemas_with_definitions_keep_them() -> None:
    schema = {"type": "object", "properties": {"p": {"$ref": "#/$defs/Point"}},
              "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}}}}
    grammar = call_grammar((ToolSpec(name="a", input_schema=schema),
                            ToolSpec(name="b", input_schema=schema)), None)
    assert "t0-Point ::=" in grammar and "t1-Point ::=" in grammar


@pytest.mark.parametrize(("text", "starts"), [
    ('Sure.\n```json\n{\n  "name": "get_weather"', True),
    ('```json {"name":"get_weather"', True),
    ("<tool_call>", True),
    ('```json\n\n{"name": "get_weather"', False),  # white space the grammar refuses
    ('```json\n{"name": "user"', False),  # JSON that names no tool
])
def test_the_lazy_grammar_starts_only_where_the_grammar_can_go_on(text: str,
                                                                  starts: bool) -> None:
    assert bool(re.fullmatch(trigger({"get_weather"}), text)) is starts


def test_text_between_words_keeps_its_spaces_after_a_call() -> None:
    text, calls = run(["<tool_call>\n", CALL, "\n</tool_call>", " Then", " hello", " world"])
    assert calls and text == " Then hello world"
