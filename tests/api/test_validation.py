"""Bad input over HTTP: each gets 400/404/413 with a message that names the field and the fix,
and nothing is queued for it."""

from __future__ import annotations

import httpx
import pytest

from tests._server import ServerProcess
from tests.conftest import user, words
from tests.images import base64_block, image_b64, image_site, with_image


def error_of(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "type", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    return body["error"]


@pytest.mark.parametrize("route", ["/v1/echo", "/v2/echo"])
@pytest.mark.parametrize(("body", "needle"), [
    ({}, "messages is required"),
    ({"messages": []}, "at least one message"),
    ({"messages": "hi"}, "messages must be a list"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "starts with the user"),
    ({"messages": [{"role": "user", "content": ""}]}, "messages[0].content must not be empty"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content must be a string"),
    ({"messages": [{"role": "user"}]}, "messages[0].content is required"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages[0].content[0] has an unknown type 'video'"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "messages[0].content[0].text must be a string"),
    ({**user("x"), "colour": "blue"}, "unknown field 'colour'"),
    ({"messages": [{"role": "user", "content": "x", "name": "bob"}]},
     "messages[0].name is not a known field"),
    ({**user("x"), "max_tokens": 0}, "max_tokens must be at least 1"),
    ({**user("x"), "max_tokens": -5}, "max_tokens must be at least 1"),
    ({**user("x"), "max_tokens": 10**9}, "above model 'echo'"),
    ({**user("x"), "max_tokens": "10"}, "max_tokens must be an integer"),
    ({**user("x"), "max_tokens": 2.5}, "max_tokens must be an integer"),
    ({**user("x"), "temperature": 1.5}, "temperature must be between 0 and 1"),
    ({**user("x"), "temperature": -0.1}, "temperature must be between 0 and 1"),
    ({**user("x"), "temperature": "warm"}, "temperature must be a number"),
    ({**user("x"), "top_p": 2}, "top_p must be between 0 and 1"),
    ({**user("x"), "stop_sequences": "END"}, "stop_sequences must be a list"),
    ({**user("x"), "stop_sequences": [""]}, "stop_sequences[0] must not be empty"),
    ({**user("x"), "prompt": "y"}, "either messages or prompt"),
    ({**user("x"), "instruction": "a", "system": "b"}, "either instruction or system"),
    ({**user("x"), "tools": [{"name": "t", "input_schema": {}}]}, "does not support tools"),
])
def test_invalid_bodies_are_400(api: httpx.Client, route: str, body: dict,
                                needle: str) -> None:
    message = error_of(api.post(route, json=body))
    assert needle in message


@pytest.mark.parametrize(("raw", "needle"), [
    (b'{"messages": [', "not valid JSON"),
    (b"", "body is empty"),
    (b"[1, 2]", "must be a JSON object"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_malformed_bodies_are_400(api: httpx.Client, raw: bytes, needle: str) -> None:
    response = api.post("/v2/echo", content=raw, headers={"content-type": "application/json"})
    assert needle in error_of(response)


def test_stream_on_the_queue_route_is_400(api: httpx.Client) -> None:
    message = error_of(api.post("/v2/echo", json={**user("x"), "stream": True}))
    assert "stream=true is for POST /v1/{model}" in message


def test_body_over_limit_is_413(api: httpx.Client) -> None:
    big = user("x" * 1_100_000)  # the test server's limit is 1,000,000 bytes
    message = error_of(api.post("/v2/echo", json=big), 413)
    assert "limit of 1000000 bytes" in message


def test_chunked_body_over_limit_is_413(api: httpx.Client) -> None:
    def chunks():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 100_000
        yield b'"}]}'

    message = error_of(api.post("/v2/echo", content=chunks()), 413)
    assert "limit" in message


def test_prompt_over_context_is_400(api: httpx.Client) -> None:
    # echo-small: 16-token context, 8 output tokens by default.
    message = error_of(api.post("/v2/echo-small", json=user(words(20))))
    assert "does not fit" in message and "context of 16" in message
    message = error_of(api.post("/v2/echo-small", json={**user(words(10)), "max_tokens": 8}))
    assert "set max_tokens to at most 6" in message


def test_default_max_tokens_shrinks_to_fit_context(api: httpx.Client) -> None:
    body = api.post("/v1/echo-small", json=user(words(12))).json()
    # 12 prompt tokens leave 4 of the 16-token context for the reply.
    assert body["usage"]["output_tokens"] == 4 and body["stop_reason"] == "max_tokens"


def test_bad_requests_queue_nothing(api: httpx.Client, server: ServerProcess) -> None:
    import sqlite3

    db = sqlite3.connect(server.data_dir / "stratus.db")
    before = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    for body in ({}, {**user("x"), "max_tokens": 0}, {**user("x"), "bogus": 1}):
        assert api.post("/v2/echo", json=body).status_code == 400
    assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == before


# -- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                                 ("GIF", "image/gif"), ("WEBP", "image/webp")])
def test_valid_base64_images_accepted_by_vision_model(api: httpx.Client, fmt: str,
                                                      media_type: str) -> None:
    body = with_image(base64_block(media_type, image_b64(fmt)))
    response = api.post("/v1/echo-vision", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["input_tokens"] == 3  # one image + two words


def test_image_url_forms_accepted_by_vision_model(api: httpx.Client) -> None:
    data_url = f"data:image/png;base64,{image_b64()}"
    with image_site() as site:
        for block in ({"type": "image_url", "image_url": {"url": data_url}},
                      {"type": "image_url", "image_url": {"url": site + "/cat.png"}},
                      {"type": "image", "source": {"type": "url", "url": site + "/cat.png"}}):
            response = api.post("/v1/echo-vision", json=with_image(block))
            assert response.status_code == 200, response.text
            assert response.json()["usage"]["input_tokens"] == 3  # one image + two words


def test_image_url_that_cannot_be_fetched_is_400(api: httpx.Client) -> None:
    with image_site() as site:
        block = {"type": "image", "source": {"type": "url", "url": site + "/gone.png"}}
        message = error_of(api.post("/v2/echo-vision", json=with_image(block)))
    assert message.startswith("messages[0].content[0] image URL")
    assert "answered HTTP 404" in message


@pytest.mark.parametrize(("block", "needle"), [
    (base64_block("image/bmp", image_b64()), "media type 'image/bmp' is not supported"),
    (base64_block("image/png", "not base64!!"), "not valid base64"),
    (base64_block("image/png", "aGVsbG8gd29ybGQ="), "not a readable image"),
    (base64_block("image/png", image_b64("JPEG")), "is a JPEG image but media type says"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
     "messages[0].content[0].image_url.url data is not valid base64"),
    ({"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}},
     "must be an http(s) URL"),
    ({"type": "image", "source": {"type": "url", "url": "cat.png"}}, "must be an http(s) URL"),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/png"}},
     "messages[0].content[0].source.data is required"),
])
def test_bad_images_are_400(api: httpx.Client, block: dict, needle: str) -> None:
    message = error_of(api.post("/v2/echo-vision", json=with_image(block)))
    assert needle in message
    assert "messages[0].content[0]" in message


def test_model_without_vision_refuses_images(api: httpx.Client) -> None:
    body = with_image(base64_block("image/png", image_b64()))
    message = error_of(api.post("/v1/echo", json=body))
    assert "cannot take images" in message


def test_a_model_named_like_another_surface_gets_the_segmind_shape(api: httpx.Client) -> None:
    for path in ("/v1/messagesx", "/v1/chat/completionsx"):
        response = api.post(path, json=user("hi"))
        assert response.status_code == 404, response.text
        body = response.json()
        assert isinstance(body["error"], str) and body["type"] == "not_found"
