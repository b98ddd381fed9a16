"""Turning a conversation into the prompt text a model was trained on.

Two formats: the Jinja chat template a GGUF file carries (``tokenizer.chat_template``), and
Gemma's turn format for Gemma models that carry none (the system prompt is folded into the
first user turn, as Gemma has no system role). A final assistant turn is a prefill: the
prompt ends with its text, so the model continues it.
"""

from __future__ import annotations

from typing import Protocol

from jinja2.sandbox import ImmutableSandboxedEnvironment

from stratus.engines._types import GenerationRequest, ImagePart


class ChatFormat(Protocol):
    def render(self, request: GenerationRequest) -> str: ...


def _turns(request: GenerationRequest) -> tuple[list[dict[str, str]], str | None]:
    """Plain-text turns, and the text of a final assistant turn (the prefill) if any."""
    turns = []
    for message in request.messages:
        text = "".join("[image]" if isinstance(p, ImagePart) else p.text for p in message.parts)
        turns.append({"role": message.role, "content": text})
    prefill = None
    if turns and turns[-1]["role"] == "assistant":
        prefill = turns.pop()["content"]
    return turns, prefill


class TemplateFormat:
    """The model's own Jinja chat template."""

    def __init__(self, template: str, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        self._template = env.from_string(template)
        self._bos = bos_token
        self._eos = eos_token

    def render(self, request: GenerationRequest) -> str:
        turns, prefill = _turns(request)
        if request.system:
            turns.insert(0, {"role": "system", "content": request.system})
        text = self._template.render(messages=turns, add_generation_prompt=True,
                                     bos_token=self._bos, eos_token=self._eos)
        return text + (prefill or "")


class GemmaFormat:
    """``<start_of_turn>user ... <end_of_turn>`` turns; the model speaks as ``model``."""

    def render(self, request: GenerationRequest) -> str:
        turns, prefill = _turns(request)
        if request.system and turns:
            turns[0] = {"role": "user",
                        "content": f"{request.system}\n\n{turns[0]['content']}"}
        parts = []
        for turn in turns:
            role = "model" if turn["role"] == "assistant" else "user"
            parts.append(f"<start_of_turn>{role}\n{turn['content']}<end_of_turn>\n")
        parts.append("<start_of_turn>model\n")
        return "".join(parts) + (prefill or "")


def _raise(message: str) -> None:
    raise ValueError(message)
