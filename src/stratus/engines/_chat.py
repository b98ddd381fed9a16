"""Turning a conversation into the prompt text a model was trained on.

Two formats: the Jinja chat template a GGUF file carries (``tokenizer.chat_template``), and
Gemma's turn format for Gemma models that carry none (the system prompt is folded into the
first user turn, as Gemma has no system role). A final assistant turn is a prefill: the
prompt ends with its text, so the model continues it.

A prompt is rendered as segments: the format's own text, where control tokens such as
``<|im_start|>`` or ``<end_of_turn>`` are meant, and the conversation's content, where they
are not. The engine tokenizes content without parsing special tokens, so text a client
writes can never forge a turn.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any, NamedTuple, Protocol

from jinja2.sandbox import ImmutableSandboxedEnvironment

from stratus.engines._types import (
    IMAGE_MARK,
    GenerationRequest,
    ImagePart,
    TextPart,
    ToolResultPart,
    ToolUsePart,
)

log = logging.getLogger("stratus.engines")


class Segment(NamedTuple):
    text: str
    special: bool  # True: the format's text (control tokens parsed); False: content


class ChatFormat(Protocol):
    def segments(self, request: GenerationRequest) -> list[Segment]: ...

    def render(self, request: GenerationRequest) -> str: ...


def _joined(segments: list[Segment]) -> str:
    return "".join(segment.text for segment in segments)


def _turns(request: GenerationRequest) -> tuple[list[dict[str, Any]], str | None]:
    """Plain-text turns, and the text of a final assistant turn (the prefill) if any."""
    turns = [{"role": message.role, "content": message.rendered}
             for message in request.messages]
    prefill = None
    if turns and turns[-1]["role"] == "assistant":
        prefill = turns.pop()["content"]
    return turns, prefill


def _tool_turns(request: GenerationRequest) -> tuple[list[dict[str, Any]], str | None]:
    """Turns as a template that knows tools reads them (OpenAI's shape): an assistant's
    calls in ``tool_calls``, each tool result a ``tool`` turn of its own."""
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        plain = "".join(p.text if isinstance(p, TextPart) else IMAGE_MARK
                        for p in message.parts if isinstance(p, TextPart | ImagePart))
        if message.role == "assistant":
            calls = [{"type": "function", "function": {"name": p.name, "arguments": p.input}}
                     for p in message.parts if isinstance(p, ToolUsePart)]
            turns.append({"role": "assistant", "content": plain,
                          **({"tool_calls": calls} if calls else {})})
            continue
        turns += [{"role": "tool", "content": p.rendered_content}
                  for p in message.parts if isinstance(p, ToolResultPart)]
        if plain or not any(isinstance(p, ToolResultPart) for p in message.parts):
            turns.append({"role": "user", "content": plain})
    prefill = None
    if turns and turns[-1]["role"] == "assistant" and "tool_calls" not in turns[-1]:
        prefill = turns.pop()["content"]
    return turns, prefill


class TemplateFormat:
    """The model's own Jinja chat template. Content goes into the template as placeholders
    that are swapped back afterwards, so the template's text and the content stay apart."""

    def __init__(self, template: str, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        self._template = env.from_string(template)
        # a template that renders tools and tool calls (Qwen2.5's, Hermes-style ones)
        self.knows_tools = "tools" in template and "tool_call" in template
        self._bos = bos_token
        self._eos = eos_token
        self._warned = False

    def segments(self, request: GenerationRequest) -> list[Segment]:
        """Each turn's content is a placeholder while the template renders (an empty one
        stays empty: templates test for content); tools go in as the template wants them,
        through its ``tojson``, which escapes ``<`` and ``>``."""
        with_tools = self.knows_tools and bool(request.tools) and (
            request.tool_choice is None or request.tool_choice.type != "none")
        turns, prefill = _tool_turns(request) if self.knows_tools else _turns(request)
        if request.system:
            turns.insert(0, {"role": "system", "content": request.system})
        nonce = secrets.token_hex(8)
        contents = [turn["content"] for turn in turns]
        marked = [{**turn, "content": f"\ue000{nonce}:{i}\ue001" if turn["content"] else ""}
                  for i, turn in enumerate(turns)]
        extra = {"tools": [{"type": "function", "function": {
            "name": t.name, "description": t.description or "",
            "parameters": t.input_schema}} for t in request.tools]} if with_tools else {}
        text = self._template.render(messages=marked, add_generation_prompt=True,
                                     bos_token=self._bos, eos_token=self._eos, **extra)
        pieces = re.split(f"\ue000{nonce}:(\\d+)\ue001", text)
        placed = sorted(int(index) for index in pieces[1::2])
        wanted = [i for i, turn in enumerate(turns) if turn["content"]]
        if placed != wanted or nonce in "".join(pieces[::2]):
            return self._unsplit(turns, prefill, extra)
        out: list[Segment] = []
        for i, piece in enumerate(pieces):
            if i % 2:
                out.append(Segment(contents[int(piece)], False))
            elif piece:
                out.append(Segment(piece, True))
        if prefill:
            out.append(Segment(prefill, False))
        return out

    def _unsplit(self, turns: list[dict[str, Any]], prefill: str | None,
                 extra: dict[str, Any]) -> list[Segment]:
        """A template that changes the content it is given (escapes it, cuts it) cannot
        keep content and template text apart: the whole prompt is one segment."""
        if not self._warned:
            self._warned = True
            log.warning("this chat template changes message content as it renders it: "
                        "control tokens written in messages cannot be told from its own")
        text = self._template.render(messages=turns, add_generation_prompt=True,
                                     bos_token=self._bos, eos_token=self._eos, **extra)
        return [Segment(text + (prefill or ""), True)]

    def render(self, request: GenerationRequest) -> str:
        return _joined(self.segments(request))


class GemmaFormat:
    """``<start_of_turn>user ... <end_of_turn>`` turns; the model speaks as ``model``."""

    def segments(self, request: GenerationRequest) -> list[Segment]:
        turns, prefill = _turns(request)
        out: list[Segment] = []
        for i, turn in enumerate(turns):
            role = "model" if turn["role"] == "assistant" else "user"
            out.append(Segment(f"<start_of_turn>{role}\n", True))
            if i == 0 and request.system:
                out.append(Segment(f"{request.system}\n\n", False))
            out.append(Segment(turn["content"], False))
            out.append(Segment("<end_of_turn>\n", True))
        out.append(Segment("<start_of_turn>model\n", True))
        if prefill:
            out.append(Segment(prefill, False))
        return out

    def render(self, request: GenerationRequest) -> str:
        return _joined(self.segments(request))


def _raise(message: str) -> None:
    raise ValueError(message)
