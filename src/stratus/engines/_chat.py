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
from typing import NamedTuple, Protocol

from jinja2.sandbox import ImmutableSandboxedEnvironment

from stratus.engines._types import GenerationRequest

log = logging.getLogger("stratus.engines")


class Segment(NamedTuple):
    text: str
    special: bool  # True: the format's text (control tokens parsed); False: content


class ChatFormat(Protocol):
    def segments(self, request: GenerationRequest) -> list[Segment]: ...

    def render(self, request: GenerationRequest) -> str: ...


def _joined(segments: list[Segment]) -> str:
    return "".join(segment.text for segment in segments)


def _turns(request: GenerationRequest) -> tuple[list[dict[str, str]], str | None]:
    """Plain-text turns, and the text of a final assistant turn (the prefill) if any."""
    turns = [{"role": message.role, "content": message.rendered}
             for message in request.messages]
    prefill = None
    if turns and turns[-1]["role"] == "assistant":
        prefill = turns.pop()["content"]
    return turns, prefill


class TemplateFormat:
    """The model's own Jinja chat template. Content goes into the template as placeholders
    that are swapped back afterwards, so the template's text and the content stay apart."""

    def __init__(self, template: str, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        self._template = env.from_string(template)
        self._bos = bos_token
        self._eos = eos_token
        self._warned = False

    def segments(self, request: GenerationRequest) -> list[Segment]:
        turns, prefill = _turns(request)
        if request.system:
            turns.insert(0, {"role": "system", "content": request.system})
        nonce = secrets.token_hex(8)
        contents = [turn["content"] for turn in turns]
        marked = [{**turn, "content": f"\ue000{nonce}:{i}\ue001"}
                  for i, turn in enumerate(turns)]
        text = self._template.render(messages=marked, add_generation_prompt=True,
                                     bos_token=self._bos, eos_token=self._eos)
        pieces = re.split(f"\ue000{nonce}:(\\d+)\ue001", text)
        placed = sorted(int(index) for index in pieces[1::2])
        if placed != list(range(len(turns))) or nonce in "".join(pieces[::2]):
            return self._unsplit(turns, prefill)
        out: list[Segment] = []
        for i, piece in enumerate(pieces):
            if i % 2:
                out.append(Segment(contents[int(piece)], False))
            elif piece:
                out.append(Segment(piece, True))
        if prefill:
            out.append(Segment(prefill, False))
        return out

    def _unsplit(self, turns: list[dict[str, str]], prefill: str | None) -> list[Segment]:
        """A template that changes the content it is given (escapes it, cuts it) cannot
        keep content and template text apart: the whole prompt is one segment."""
        if not self._warned:
            self._warned = True
            log.warning("this chat template changes message content as it renders it: "
                        "control tokens written in messages cannot be told from its own")
        text = self._template.render(messages=turns, add_generation_prompt=True,
                                     bos_token=self._bos, eos_token=self._eos)
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
