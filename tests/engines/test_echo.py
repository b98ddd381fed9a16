from __future__ import annotations

import asyncio

import pytest

from stratus.engines import Finished, GenerationRequest, TextDelta
from stratus.engines._stops import StopMatcher
from stratus.engines.echo import EchoEngine

pytestmark = pytest.mark.anyio


def req(text: str, max_tokens: int = 50, stops: tuple[str, ...] = (),
        system: str | None = None) -> GenerationRequest:
    return GenerationRequest(messages=({"role": "user", "parts": ({"text": text},)},),
                             max_tokens=max_tokens, stop_sequences=stops, system=system)


async def run(engine: EchoEngine, request: GenerationRequest) -> tuple[str, Finished]:
    text, finished = "", None
    async for event in engine.generate(request):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            finished = event
    return text, finished


async def test_echoes_last_user_turn_one_token_per_word() -> None:
    text, done = await run(EchoEngine(), req("one  two\nthree", system="sys tem"))
    assert text == "one two three"
    assert done == Finished("end_turn", input_tokens=5, output_tokens=3)


async def test_max_tokens() -> None:
    text, done = await run(EchoEngine(), req("a b c d", max_tokens=2))
    assert text == "a b" and done.stop_reason == "max_tokens" and done.output_tokens == 2
    _, done = await run(EchoEngine(), req("a b", max_tokens=2))
    assert done.stop_reason == "end_turn"


async def test_stop_sequence_spanning_tokens_is_never_emitted() -> None:
    text, done = await run(EchoEngine(), req("say END OF it", stops=("D OF",)))
    assert text == "say EN"
    assert done.stop_reason == "stop_sequence" and done.stop_sequence == "D OF"


async def test_cancelling_the_consumer_stops_generation() -> None:
    engine = EchoEngine({"delay_ms": 20})
    seen: list[str] = []

    async def consume() -> None:
        async for event in engine.generate(req(" ".join(["w"] * 1000))):
            if isinstance(event, TextDelta):
                seen.append(event.text)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 < len(seen) < 100


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="speed: unknown option"):
        EchoEngine({"speed": 3})
    with pytest.raises(ValueError, match="delay_ms"):
        EchoEngine({"delay_ms": -1})


@pytest.mark.parametrize(("pieces", "stops", "out", "matched"), [
    (["hel", "lo wor", "ld"], ("xyz",), "hello world", None),
    (["ab", "c<", "/s", "> tail"], ("</s>",), "abc", "</s>"),
    (["a<", "b"], ("<|",), "a<b", None),
    (["x", "STO"], ("STOP",), "xSTO", None),
    (["xTOP"], ("STOP", "TO"), "x", "TO"),
    (["STOP"], ("TO", "STOP"), "", "STOP"),
])
def test_stop_matcher(pieces, stops, out, matched) -> None:
    matcher = StopMatcher(stops)
    text = "".join(matcher.feed(p) for p in pieces) + matcher.flush()
    assert text == out and matcher.matched == matched
