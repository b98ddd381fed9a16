"""The content policy: configured words and patterns that block a request's input or output.

A blocked input ends its job FAILED before it runs and costs nothing; a blocked output stops
the generation where the match appears and ends the job FAILED. Words match whole words,
ignoring case; patterns are Python regular expressions, searched as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from stratus.config import PolicyConfig, PolicyRule
from stratus.engines import GenerationRequest

Side = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    regex: re.Pattern[str]


def _compile(rule: PolicyRule) -> re.Pattern[str]:
    parts = [rf"(?i:\b{re.escape(word)}\b)" for word in rule.words]
    parts += [f"(?:{pattern})" for pattern in rule.patterns]
    return re.compile("|".join(parts))


class ContentPolicy:
    def __init__(self, config: PolicyConfig) -> None:
        self._rules: dict[Side, list[_Compiled]] = {"input": [], "output": []}
        for rule in config.rules:
            regex = _compile(rule)
            for side in rule.on:
                self._rules[side].append(_Compiled(rule.name, regex))

    def checks(self, side: Side) -> bool:
        return bool(self._rules[side])

    def violation(self, side: Side, texts: Iterable[str]) -> str | None:
        """The error a job blocked on ``side`` ends with, or None if nothing matches."""
        rules = self._rules[side]
        if not rules:
            return None
        for text in texts:
            for rule in rules:
                if rule.regex.search(text):
                    return (f"blocked by the content policy: the {side} matched rule "
                            f"{rule.name!r}")
        return None

    def input_violation(self, request: GenerationRequest) -> str | None:
        """Matched against what the model is given: the system prompt, and each turn as the
        model reads it (its blocks joined, an image as ``[image]``), so a word split across
        two blocks is still the word."""
        texts = [request.system or ""]
        texts += [message.rendered for message in request.messages]
        return self.violation("input", texts)
