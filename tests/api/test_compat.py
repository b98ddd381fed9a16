"""What current official SDKs and agent tools send: fields accepted (and honoured where they
can be), shapes read as Anthropic's and OpenAI's APIs read them, clear 400s for the rest."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests._server import ServerProcess


@pytest.fixture
def claude(server: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=server.key, max_retries=0)


@pytest.fixture
def gpt(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)


def test_fields_agent_tools_send_are_accepted(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="echo", max_tokens=20, thinking={"type": "disabled"}, service_tier="auto",
        metadata={"user_id": "user-42"},
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "hello there", "cache_control": {"type": "ephemeral"}}]}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31,some-future-beta"},
        extra_body={"cache_control": {"type": "ephemeral"}})
    assert message.content[0].text == "hello there"  # type: ignore[union-attr]
    assert message.usage.service_tier == "standard"


def test_consecutive_turns_of_one_role_are_one_turn(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="echo", max_tokens=20, messages=[
        {"role": "user", "content": "first part"},
        {"role": "user", "content": [{"type": "text", "text": "second part"}]}])
    assert message.content[0].text == "first part second part"  # type: ignore[union-attr]
    assert message.usage.input_tokens == 4


def test_a_text_document_is_read_as_text(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="echo", max_tokens=20, messages=[
        {"role": "user", "content": [
            {"type": "document", "title": "Notes",
             "source": {"type": "text", "media_type": "text/plain", "data": "alpha beta"}},
            {"type": "document",
             "source": {"type": "content", "content": [{"type": "text", "text": "gamma"}]}}]}])
    assert message.content[0].text == "Notes alpha betagamma"  # type: ignore[union-attr]


@pytest.mark.parametrize(("extra", "needle"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "has no extended thinking"),
    ({"output_config": {"format": {"type": "json_schema", "schema": {
        "type": "object", "properties": {"n": {"type": "integer", "multipleOf": 2}}}}}},
     "output_config.format.schema.properties.n: the JSON Schema keyword 'multipleOf' is not "
     "supported"),
    ({"output_config": {"effort": "low"}}, "output_config.effort is not supported"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}]},
     "only text documents are read here"),
])
def test_what_no_model_here_does_is_a_clear_400(api: httpx.Client, extra: dict,
                                               needle: str) -> None:
    body = {"model": "echo", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}], **extra}
    response = api.post("/v1/messages", json=body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


def test_openai_fields_are_accepted(gpt: openai.OpenAI) -> None:
    completion = gpt.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "one two three"}],
        presence_penalty=0.5, frequency_penalty=0.2, logprobs=False, user="user-42",
        response_format={"type": "text"})
    assert completion.choices[0].message.content == "one two three"


@pytest.mark.parametrize(("extra", "needle"), [
    ({"logprobs": True}, "logprobs are not available"),
    ({"frequency_penalty": 3}, "frequency_penalty must be between -2 and 2"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "response_format.json_schema.schema is required"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": False},
     "does not support tools"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]},
     "a tool message needs tool_call_id"),
])
def test_openai_what_cannot_be_done_is_a_clear_400(api: httpx.Client, extra: dict,
                                                  needle: str) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], **extra}
    response = api.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


def test_the_end_user_is_kept_in_history(claude: anthropic.Anthropic, gpt: openai.OpenAI,
                                         api: httpx.Client) -> None:
    message = claude.messages.with_raw_response.create(
        model="echo", max_tokens=5, metadata={"user_id": "end-user-7"},
        messages=[{"role": "user", "content": "hi"}])
    completion = gpt.chat.completions.with_raw_response.create(
        model="echo", user="end-user-8", messages=[{"role": "user", "content": "hi"}])
    for raw, user_id in ((message, "end-user-7"), (completion, "end-user-8")):
        rid = raw.headers.get("request-id") or raw.headers["x-request-id"]
        entry = api.get(f"/v1/requests/{rid}").json()
        assert entry["user_id"] == user_id
    refused = api.post("/v1/messages", json={
        "model": "echo", "max_tokens": 5, "metadata": {"user_id": 42},
        "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 400
    assert "metadata.user_id must be a string" in refused.json()["error"]["message"]
