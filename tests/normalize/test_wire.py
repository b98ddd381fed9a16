"""Raw bodies that must be refused with a 400 naming the problem, never a 500."""

from __future__ import annotations

import pytest

from stratus.errors import InvalidRequest
from stratus.normalize import parse_json
from stratus.normalize._wire import MAX_DEPTH


def refused(raw: bytes) -> str:
    with pytest.raises(InvalidRequest) as error:
        parse_json(raw)
    return error.value.message


def test_integers_past_the_digit_limit() -> None:
    message = refused(b'{"max_tokens": 1' + b"0" * 5000 + b"}")
    assert "too many digits" in message


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_nesting_too_deep(depth: int) -> None:
    raw = b'{"metadata": ' + b"[" * depth + b"]" * depth + b"}"
    assert "nested too deeply" in refused(raw)


def test_nesting_within_the_limit_is_fine() -> None:
    depth = MAX_DEPTH - 2
    raw = b'{"metadata": ' + b"[" * depth + b"]" * depth + b"}"
    assert isinstance(parse_json(raw), dict)


@pytest.mark.parametrize("raw, where", [
    (b'{"messages": [{"role": "user", "content": "a \\ud800 b"}]}', "messages[0].content"),
    (b'{"system": "\\udfff"}', "system"),
    (b'{"metadata": {"k": ["ok", "\\ud83d"]}}', "metadata.k[1]"),
])
def test_lone_surrogates_are_named(raw: bytes, where: str) -> None:
    message = refused(raw)
    assert "surrogate" in message and message.startswith(where)


def test_a_surrogate_pair_is_a_real_character() -> None:
    data = parse_json(b'{"text": "\\ud83d\\ude00"}')
    assert data == {"text": "\U0001F600"}


@pytest.mark.parametrize("raw", [b'{"metadata": {"x": NaN}}', b'{"amount": Infinity}',
                                 b'{"amount": -Infinity}', b'{"amount": 1e400}'])
def test_numbers_that_are_not_finite_are_named(raw: bytes) -> None:
    message = refused(raw)
    assert "must be a finite number" in message
    assert message.startswith(("metadata.x", "amount"))
