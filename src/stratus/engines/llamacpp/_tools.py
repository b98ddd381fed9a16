"""Tool calls on a local model, in the forms Qwen2.5 models write them: the trained
``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``, or the same object in a
```` ```json ```` block (what the Coder models write).

:func:`call_grammar` is the llama.cpp grammar that makes every call parse and its arguments
validate against the tool's ``input_schema``: applied from the first token when a call is
required (``tool_choice`` ``any`` or ``tool``), else lazily, from the moment the model starts
a call (:data:`TRIGGER`). :class:`CallParser` takes the calls out of the text as it streams;
a ```` ```json ```` block that is not a call stays text.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from stratus.engines._types import ToolCall, ToolChoice, ToolSpec

# what opens a call, and what closes it
FENCES = {"<tool_call>": "</tool_call>", "```json": "```"}
# JSON's white space: a space, or a new line and an indent (bounded, so that it ends)
SPACE = 'space ::= | " " | "\\n" [ \\t]{0,20}'
_SPACE = r"(?: |\n[ \t]{0,20})?"  # the same, as a pattern


def json_grammar(schema: dict[str, Any], prop_order: list[str] | None = None) -> str:
    """llama-cpp-python's grammar for ``schema``, with what a JSON string may hold made
    JSON's: its converter lets control characters (a raw new line, a tab) into strings,
    and JSON does not."""
    rules = json_schema_to_gbnf(json.dumps(schema), prop_order=prop_order)
    return rules.replace(r'char ::= [^"\\]', r'char ::= [^"\\\x7F\x00-\x1F]')


def trigger(names: Collection[str]) -> str:
    """The text that starts the lazy grammar (its first group is where the grammar begins):
    ``<tool_call>``, or a ```` ```json ```` block naming one of the tools, with exactly the
    white space the grammar allows (text the grammar would refuse must not start it)."""
    alternatives = "|".join(re.escape(name) for name in sorted(names))
    block = (rf'```json{_SPACE}\{{{_SPACE}"name"{_SPACE}:{_SPACE}"(?:{alternatives})"')
    return rf"[\s\S]*?(<tool_call>|{block})[\s\S]*"


def call_grammar(tools: tuple[ToolSpec, ...], choice: ToolChoice | None) -> str:
    """GBNF for one or more calls (one only with ``disable_parallel_tool_use``) of the tools
    ``choice`` allows."""
    allowed = [t for t in tools if choice is None or choice.type != "tool"
               or t.name == choice.name]
    defs: dict[str, Any] = {}
    alternatives = []
    for i, tool in enumerate(allowed):
        arguments = _hoisted(tool.input_schema, f"t{i}_", defs)
        alternatives.append({
            "type": "object", "additionalProperties": False, "required": ["name", "arguments"],
            "properties": {"name": {"const": tool.name}, "arguments": arguments}})
    schema: dict[str, Any] = {"oneOf": alternatives}
    if defs:
        schema["$defs"] = defs
    rules = json_grammar(schema, prop_order=["name", "arguments"])
    lines = []
    for line in rules.splitlines():
        if line.startswith("root ::="):
            line = "call ::=" + line[len("root ::="):]
        elif line.startswith("space ::="):
            line = SPACE
        lines.append(line)
    blocks = " | ".join(f'"{opening}" space call space "{closing}"'
                        for opening, closing in FENCES.items())
    more = "" if choice is not None and choice.disable_parallel_tool_use else " (space block)*"
    return f"root ::= block{more} space\nblock ::= {blocks}\n" + "\n".join(lines) + "\n"


def _hoisted(schema: Any, prefix: str, defs: dict[str, Any]) -> Any:
    """A tool's schema whose ``$defs`` move to the combined schema's root, renamed with
    ``prefix`` (and its ``#/$defs/...`` references with them), so that they still resolve."""
    if isinstance(schema, list):
        return [_hoisted(item, prefix, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("$defs", "definitions") and isinstance(value, dict):
            for name, sub in value.items():
                defs[prefix + name] = _hoisted(sub, prefix, defs)
        elif key == "$ref" and isinstance(value, str):
            out[key] = re.sub(r"^#/(?:\$defs|definitions)/", f"#/$defs/{prefix}", value)
        else:
            out[key] = _hoisted(value, prefix, defs)
    return out


class CallParser:
    """Feed the text as it comes; get back the text that is not a call, and whole calls."""

    def __init__(self, names: set[str]) -> None:
        self._names = names
        self._held = ""  # text that may be the start of a fence
        self._open: str | None = None  # inside a fence: which one
        self._body = ""
        self.calls: list[ToolCall] = []

    def feed(self, piece: str) -> tuple[str, list[ToolCall]]:
        text, made = "", []
        buffer = self._held + piece
        self._held = ""
        while buffer:
            if self._open is not None:
                closing = FENCES[self._open]
                buffer, self._body = self._body + buffer, ""
                end = buffer.find(closing)
                if end < 0:  # (the closing may come in pieces: all of it is kept)
                    self._body = buffer
                    break
                body = buffer[:end]
                call = self._call(body)
                if call is None:  # a block of JSON that is no call: text after all
                    text += self._text(self._open + body + closing)
                else:
                    made.append(call)
                self._open = None
                buffer = buffer[end + len(closing):]
                continue
            found = [(buffer.find(f), f) for f in FENCES if f in buffer]
            if found:
                start, fence = min(found)
                text += self._text(buffer[:start])
                self._open = fence
                buffer = buffer[start + len(fence):]
                continue
            keep = _held(buffer)
            text += self._text(buffer[:len(buffer) - keep])
            self._held = buffer[len(buffer) - keep:]
            break
        return text, made

    def _text(self, text: str) -> str:
        """Text before the first call is the reply's; white space between and after calls
        is the format's, not the reply's."""
        return "" if self.calls and not text.strip() else text

    def flush(self) -> str:
        """Text held back at the end. A call never closed is dropped (it was cut short);
        a block that is no call is text."""
        out, self._held = self._held, ""
        if self._open is not None and not self._started_call(self._body):
            out = self._open + self._body + out
        self._open, self._body = None, ""
        return self._text(out)

    def _started_call(self, body: str) -> bool:
        """Whether an unclosed block was a call (cut short), not some other JSON."""
        named = re.match(r'\s*\{\s*"name"\s*:\s*"([^"]*)"', body)
        return self._open == "<tool_call>" or (named is not None
                                               and named.group(1) in self._names)

    def _call(self, body: str) -> ToolCall | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("name") not in self._names \
                or not isinstance(data.get("arguments", {}), dict):
            return None
        call = ToolCall(id="toolu_" + uuid.uuid4().hex[:24], name=data["name"],
                        input=data.get("arguments") or {})
        self.calls.append(call)
        return call


def _held(text: str) -> int:
    """The length of the longest end of ``text`` that a fence starts with."""
    longest = 0
    for fence in FENCES:
        for n in range(min(len(fence) - 1, len(text)), longest, -1):
            if text.endswith(fence[:n]):
                longest = n
                break
    return longest
