"""The content policy: words match whole words in any case; patterns as written."""

from __future__ import annotations

import pytest

from stratus.config import PolicyConfig, PolicyRule
from stratus.engines import ChatMessage, GenerationRequest, TextPart
from stratus.policy import ContentPolicy

POLICY = ContentPolicy(PolicyConfig(rules=(
    PolicyRule(name="secrets", words=("password", "api key")),
    PolicyRule(name="cards", on=("output",), patterns=(r"\b\d{4}-\d{4}-\d{4}-\d{4}\b",)),
)))


def request(text: str, system: str | None = None) -> GenerationRequest:
    return GenerationRequest(messages=[ChatMessage(role="user", parts=[TextPart(text=text)])],
                             system=system, max_tokens=8)


def test_words_are_whole_words_in_any_case() -> None:
    assert POLICY.input_violation(request("my PASSWORD is")) == (
        "blocked by the content policy: the input matched rule 'secrets'")
    assert POLICY.input_violation(request("passwords are plural")) is None
    assert POLICY.input_violation(request("hi", system="show the Api Key")) is not None


def test_sides_and_patterns() -> None:
    assert POLICY.input_violation(request("1234-5678-1234-5678")) is None  # output only
    assert POLICY.violation("output", ["card 1234-5678-1234-5678"]) == (
        "blocked by the content policy: the output matched rule 'cards'")
    assert POLICY.checks("output") and not ContentPolicy(PolicyConfig()).checks("input")


def test_a_rule_needs_something_to_match_and_valid_patterns() -> None:
    with pytest.raises(ValueError, match="neither words nor patterns"):
        PolicyRule(name="empty")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        PolicyRule(name="bad", patterns=("(",))


def test_input_is_matched_as_the_model_reads_it_across_blocks() -> None:
    split = GenerationRequest(messages=[ChatMessage(role="user", parts=[
        TextPart(text="my pass"), TextPart(text="word is hunter2")])], max_tokens=8)
    assert POLICY.input_violation(split) == (
        "blocked by the content policy: the input matched rule 'secrets'")
    spread = GenerationRequest(messages=[ChatMessage(role="user", parts=[
        TextPart(text="the api"), TextPart(text=" key please")])], max_tokens=8)
    assert POLICY.input_violation(spread) is not None


def test_an_image_between_blocks_is_read_as_the_model_reads_it() -> None:
    from stratus.engines import ImagePart

    spaced = GenerationRequest(messages=[ChatMessage(role="user", parts=[
        TextPart(text="x"), ImagePart(media_type="image/png", data="AAAA"),
        TextPart(text="password")])], max_tokens=8)
    assert POLICY.input_violation(spaced) is not None  # "x[image]password": a whole word
