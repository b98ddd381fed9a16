"""Request meaning: turns, limits, system prompt, images, context fit."""

from __future__ import annotations

import asyncio
import base64

import pytest

from stratus.config import Capabilities, ModelConfig
from stratus.engines import ImagePart
from stratus.engines.echo import EchoEngine
from stratus.errors import InvalidRequest
from stratus.models import ModelSpec
from stratus.normalize import check, fit, parse_model
from stratus.normalize._images import MAX_IMAGE_BYTES
from stratus.protocol.messages import MessagesRequest
from tests.images import base64_block, image_b64, png_b64, with_image


def spec(**kw) -> ModelSpec:
    return ModelSpec(ModelConfig(slug="m", **kw), EchoEngine())


def run(body: dict, model: ModelSpec | None = None):
    model = model or spec()
    return asyncio.run(fit(check(parse_model(body, MessagesRequest), model), model))


def test_instruction_becomes_system_and_defaults_apply() -> None:
    out = run({"instruction": "be kind", "messages": [{"role": "user", "content": "hi"}]})
    assert out.request.system == "be kind"
    assert out.request.max_tokens == 1024
    assert out.input_tokens == 3
    assert out.request.messages[0].text == "hi"


def test_conversation_with_assistant_prefill() -> None:
    out = run({"messages": [{"role": "user", "content": "a"},
                            {"role": "assistant", "content": "b"},
                            {"role": "user", "content": "c"},
                            {"role": "assistant", "content": ""}]})
    assert [m.role for m in out.request.messages] == ["user", "assistant", "user", "assistant"]


def test_sampling_parameters_pass_through() -> None:
    out = run({"prompt": "x", "temperature": 0, "top_p": 0.9, "top_k": 40,
               "stop_sequences": ["\n\n"], "max_tokens": 7, "metadata": {"user_id": "u"}})
    r = out.request
    assert (r.temperature, r.top_p, r.top_k, r.stop_sequences, r.max_tokens) == \
        (0, 0.9, 40, ("\n\n",), 7)


def test_integer_temperature_is_a_number() -> None:
    assert run({"prompt": "x", "temperature": 1}).request.temperature == 1.0


def test_max_tokens_above_model_limit() -> None:
    with pytest.raises(InvalidRequest, match="limit of 16"):
        run({"prompt": "x", "max_tokens": 17}, spec(max_output_tokens=16, default_max_tokens=8))


def test_image_parts_keep_their_bytes() -> None:
    data = image_b64("PNG")
    out = run(with_image(base64_block("image/png", data)),
              spec(capabilities=Capabilities(vision=True)))
    part = out.request.messages[0].parts[0]
    assert isinstance(part, ImagePart) and part.data == data and part.media_type == "image/png"


def test_image_over_5_mb_is_refused() -> None:
    big = base64.b64encode(b"\0" * (MAX_IMAGE_BYTES + 10)).decode()
    with pytest.raises(InvalidRequest, match="larger than 5 MB"):
        run(with_image(base64_block("image/png", big)),
            spec(capabilities=Capabilities(vision=True)))


def test_tools_need_the_capability_and_tool_choice_needs_tools() -> None:
    tools = [{"name": "get_time", "input_schema": {"type": "object"}}]
    with pytest.raises(InvalidRequest, match="does not support tools"):
        run({"prompt": "x", "tools": tools})
    with pytest.raises(InvalidRequest, match="without tools"):
        run({"prompt": "x", "tool_choice": {"type": "auto"}},
            spec(capabilities=Capabilities(tools=True)))
    assert run({"prompt": "x", "tools": tools}, spec(capabilities=Capabilities(tools=True)))


def test_image_whose_header_claims_too_many_pixels() -> None:
    vision = spec(capabilities=Capabilities(vision=True))
    for width, height in ((20_000, 20_000), (9000, 10), (6000, 6000)):
        with pytest.raises(InvalidRequest, match="resize it") as error:
            run(with_image(base64_block("image/png", png_b64(width, height))), vision)
        assert "messages[0].content[0].source" in error.value.message


def test_image_that_does_not_decode_is_refused() -> None:
    vision = spec(capabilities=Capabilities(vision=True))
    for idat in (b"", b"not zlib at all"):
        with pytest.raises(InvalidRequest, match="not a readable image"):
            run(with_image(base64_block("image/png", png_b64(16, 16, idat))), vision)


class _Dense(EchoEngine):
    """An engine whose every token is at most 4 characters long."""

    async def count_tokens(self, request) -> int:  # a long prompt must not get this far
        raise AssertionError("tokenized a prompt that cannot fit")

    def min_tokens(self, chars: int) -> int:
        return chars // 4


def test_prompt_far_too_long_is_refused_before_it_is_tokenized() -> None:
    dense = ModelSpec(ModelConfig(slug="m", context_length=100), _Dense())
    with pytest.raises(InvalidRequest, match="at least 250 tokens") as error:
        run({"messages": [{"role": "user", "content": "x" * 1000}]}, dense)
    assert "context of 100 tokens" in error.value.message


def test_top_k_past_any_vocabulary_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="top_k must be from 0 to 1000000"):
        run({"prompt": "x", "top_k": 10**23})


def test_at_most_100_images_a_request() -> None:
    vision = spec(capabilities=Capabilities(vision=True))
    block = base64_block("image/png", image_b64())
    body = {"messages": [{"role": "user", "content": [block] * 101}]}
    with pytest.raises(InvalidRequest, match="at most 100 images"):
        run(body, vision)
