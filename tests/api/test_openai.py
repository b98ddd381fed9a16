"""The OpenAI-compatible surface, driven by the official ``openai`` SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests._server import ServerProcess
from tests.conftest import words


@pytest.fixture
def client(server: ServerProcess):
    with openai.OpenAI(api_key=server.key, base_url=server.url + "/v1", max_retries=0) as c:
        yield c


def test_create(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="claude-3-haiku",
        messages=[{"role": "system", "content": "be brief"},
                  {"role": "user", "content": "hello from openai"}])
    choice = completion.choices[0]
    assert choice.message.content == "hello from openai"
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == 5 and completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 8
    assert completion.model == "claude-3-haiku"


def test_max_tokens_stop_and_high_temperature(client: openai.OpenAI) -> None:
    cut = client.chat.completions.create(
        model="echo", max_completion_tokens=2, temperature=1.5,
        messages=[{"role": "user", "content": "a b c d"}])
    assert cut.choices[0].message.content == "a b" and cut.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(
        model="echo", max_tokens=20, stop="END",
        messages=[{"role": "user", "content": "one END two"}])
    assert stopped.choices[0].message.content == "one "
    assert stopped.choices[0].finish_reason == "stop"


def test_streaming(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo-slow", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": words(4)}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == words(4)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].usage.completion_tokens == 4


def test_errors(client: openai.OpenAI, server: ServerProcess) -> None:
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model="echo", n=2,
                                       messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="temperature must be between 0 and 2"):
        client.chat.completions.create(model="echo", temperature=3,
                                       messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9",
                                       messages=[{"role": "user", "content": "x"}])
    wrong = openai.OpenAI(api_key="sk-wrong-0000000000", base_url=server.url + "/v1",
                          max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
    response = httpx.post(server.url + "/v1/chat/completions",
                          headers={"Authorization": f"Bearer {server.key}"},
                          json={"model": "echo", "messages": [], "frequency": 1})
    assert response.status_code == 400
    assert "unknown field 'frequency'" in response.json()["error"]["message"]


def test_failure_mid_stream_is_an_error_chunk(server: ServerProcess) -> None:
    body = {"model": "echo-timeout", "stream": True,
            "messages": [{"role": "user", "content": words(20)}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {server.key}"}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert '"error"' in lines[-2] and "execution timeout" in lines[-2]


def test_seed_past_64_bits_is_a_400(server: ServerProcess) -> None:
    with server.client() as api:
        response = api.post("/v1/chat/completions", json={
            "model": "echo", "seed": 10**23, "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 400, response.text
        assert "seed" in response.json()["error"]["message"]
