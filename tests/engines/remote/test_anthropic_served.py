"""A ``stratus serve`` whose model is Anthropic's API (a local server speaking it): the three
surfaces, hand-backs, failures after text and the cooldown, seen as a client sees them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests._server import ServerProcess
from tests.conftest import eventually, new_key
from tests.engines.remote._fake_anthropic import (
    ErrorAfter,
    Fail,
    FakeAnthropic,
    Hang,
    Reply,
    ToolUse,
)

KEY_ENV = "STRATUS_TEST_ANTHROPIC_KEY"
CONFIG = """
[server]
sync_timeout = 20

[[models]]
slug = "claude-remote"
aliases = ["claude-3-haiku"]
engine = "anthropic"
price_input = 1000        # 0.001 USD a token, in and out
price_output = 1000
[models.capabilities]
tools = true
vision = true
[models.options]
base_url = "{url}"
model = "claude-3-5-haiku-latest"
api_key_env = "{env}"
cooldown_after = 2
cooldown = 0.5
max_cooldown = 1

[[models]]
slug = "claude-timeout"
engine = "anthropic"
execution_timeout = 1
[models.options]
base_url = "{url}"
model = "claude-3-5-haiku-latest"
api_key_env = "{env}"
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key="sk-ant-upstream") as server:
        yield server


@pytest.fixture(scope="module")
def served(fake: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("anthropic-served"),
                         CONFIG.format(url=fake.url, env=KEY_ENV),
                         env={KEY_ENV: "sk-ant-upstream"}).start()
    yield proc
    proc.kill()


@pytest.fixture
def client(served: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=served.url, api_key=served.key, max_retries=0)


def test_messages_and_streams_come_from_the_upstream(fake: FakeAnthropic,
                                                     client: anthropic.Anthropic) -> None:
    fake.script(Reply(text="The capital of France is Paris.", input_tokens=12))
    message = client.messages.create(model="claude-3-haiku", max_tokens=50,
                                     messages=[{"role": "user", "content": "Capital?"}])
    assert message.content[0].text == "The capital of France is Paris."  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 6)
    assert message.stop_reason == "end_turn"
    sent = fake.requests[-1]
    assert sent.headers["x-api-key"] == "sk-ant-upstream"  # ours, not the client's
    assert sent.body is not None and sent.body["model"] == "claude-3-5-haiku-latest"

    fake.script(Reply(text="streamed word by word", delay=0.02))
    with client.messages.stream(model="claude-remote", max_tokens=50,
                                messages=[{"role": "user", "content": "go"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "streamed word by word" and len(pieces) > 1
    assert final.usage.output_tokens == 4


def test_the_queue_surface_runs_on_the_upstream(fake: FakeAnthropic,
                                                served: ServerProcess) -> None:
    with served.client() as api:
        submitted = api.post("/v2/claude-remote", json={
            "messages": [{"role": "user", "content": "queued hello"}], "max_tokens": 20})
        assert submitted.status_code == 200
        rid = submitted.json()["request_id"]
        assert eventually(lambda: api.get(f"/v2/requests/{rid}/status").json()["status"]
                        == "COMPLETED")
        result = api.get(f"/v2/requests/{rid}").json()
    assert '"queued hello"' in result["output"]


def test_an_overloaded_upstream_hands_the_job_back_until_it_answers(
        fake: FakeAnthropic, served: ServerProcess) -> None:
    fake.script(Fail(529, "overloaded_error", retry_after=0.2), Reply(text="made it"))
    before = len(fake.requests)
    with served.client() as api:
        response = api.post("/v1/claude-remote", json={
            "messages": [{"role": "user", "content": "x"}], "max_tokens": 10})
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "made it"
    assert [r.path for r in fake.requests[before:]] == ["/v1/messages", "/v1/messages"]


def test_an_error_after_text_fails_the_job_and_charges_nothing_more(
        fake: FakeAnthropic, served: ServerProcess) -> None:
    with served.client() as admin:
        key = new_key(admin, "anthropic-failure", credits=1.0)
    fake.script(ErrorAfter(text="half of it", error_type="api_error",
                           message="Internal server error"))
    with served.client(key) as api:
        response = api.post("/v1/claude-remote", json={
            "messages": [{"role": "user", "content": "x"}], "max_tokens": 10})
        assert response.status_code == 502, response.text
        body = response.json()
        assert body["status"] == "FAILED"
        assert "api_error: Internal server error" in body["error"]
        credits = api.get("/v1/account").json()["credits"]
    assert credits["balance"] == pytest.approx(1.0) and credits["reserved"] == 0


def test_a_failing_upstream_cools_down_and_its_jobs_wait_queued(
        fake: FakeAnthropic, served: ServerProcess) -> None:
    fake.script(*[Fail(503, "api_error")] * 2)
    with served.client() as api:
        submitted = api.post("/v2/claude-remote", json={
            "messages": [{"role": "user", "content": "after the storm"}], "max_tokens": 10})
        rid = submitted.json()["request_id"]
        states = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            card = next(m for m in api.get("/v1/models").json()["data"]
                        if m["slug"] == "claude-remote")
            ready = httpx.get(served.url + "/ready").json()["models"]["claude-remote"]
            status = api.get(f"/v2/requests/{rid}/status").json()["status"]
            states.append((card["status"]["state"], ready["state"], status))
            if status == "COMPLETED":
                break
            time.sleep(0.05)
        result = api.get(f"/v2/requests/{rid}").json()
        card = next(m for m in api.get("/v1/models").json()["data"]
                    if m["slug"] == "claude-remote")
    # the model list and /ready said so, while the job waited in the queue
    assert ("cooldown", "cooldown", "QUEUED") in states
    assert states[-1][2] == "COMPLETED"  # a probe found it answering again
    assert card["status"] == {"state": "ready", "reason": None, "next_probe_at": None,
                              "estimated_ready_at": None}
    assert '"after the storm"' in result["output"]


WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


def test_a_tool_loop_runs_through_the_queue(fake: FakeAnthropic,
                                            client: anthropic.Anthropic) -> None:
    question = {"role": "user", "content": "What's the weather in Paris?"}
    fake.script(Reply(text="", tool_uses=(ToolUse("get_weather", {"city": "Paris"},
                                                  id="toolu_01"),)))
    first = client.messages.create(model="claude-remote", max_tokens=100, tools=[WEATHER],
                                   tool_choice={"type": "auto"}, messages=[question])
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use"
    assert (call.id, call.name, call.input) == ("toolu_01", "get_weather", {"city": "Paris"})

    fake.script(Reply(text="It is 18 C and sunny in Paris."))
    with client.messages.stream(model="claude-remote", max_tokens=100, tools=[WEATHER],
                                messages=[question,
                                          {"role": "assistant", "content": first.content},
                                          {"role": "user", "content": [{
                                              "type": "tool_result", "tool_use_id": "toolu_01",
                                              "content": "18 C, sunny"}]}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "It is 18 C and sunny in Paris."  # type: ignore[union-attr]
    sent = fake.requests[-1].body
    assert sent is not None
    assert sent["messages"][1]["content"] == [{"type": "tool_use", "id": "toolu_01",
                                               "name": "get_weather",
                                               "input": {"city": "Paris"}}]
    assert sent["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_01",
                                               "content": "18 C, sunny"}]


def test_a_streamed_tool_call_arrives_as_input_json(fake: FakeAnthropic,
                                                   client: anthropic.Anthropic) -> None:
    fake.script(Reply(text="Looking it up.",
                      tool_uses=(ToolUse("get_weather", {"city": "Rome"}, id="toolu_02"),)))
    with client.messages.stream(model="claude-remote", max_tokens=100, tools=[WEATHER],
                                messages=[{"role": "user", "content": "Rome?"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds
    assert final.stop_reason == "tool_use"
    assert final.content[0].text == "Looking it up."  # type: ignore[union-attr]
    assert final.content[1].input == {"city": "Rome"}  # type: ignore[union-attr]


def test_an_image_url_from_a_private_address_is_refused(served: ServerProcess) -> None:
    with served.client() as api:
        response = api.post("/v1/claude-remote", json={"max_tokens": 10, "messages": [{
            "role": "user", "content": [
                {"type": "image", "source": {"type": "url",
                                             "url": "http://127.0.0.1:9/cat.png"}},
                {"type": "text", "text": "what is it"}]}]})
    assert response.status_code == 400
    assert "non-public address" in response.json()["error"]


def test_a_cancel_closes_the_upstream_stream(fake: FakeAnthropic,
                                            served: ServerProcess) -> None:
    fake.script(Hang())
    with served.client() as api:
        rid = api.post("/v2/claude-remote", json={
            "messages": [{"role": "user", "content": "x"}], "max_tokens": 10}
                       ).json()["request_id"]
        assert eventually(lambda: fake.inflight == 1)
        assert api.post(f"/v2/requests/{rid}/cancel").status_code == 200
        assert eventually(lambda: fake.inflight == 0)
        status = api.get(f"/v2/requests/{rid}/status").json()
    assert status["status"] == "FAILED" and status["error_type"] == "cancelled"


def test_the_execution_timeout_closes_the_upstream_stream(fake: FakeAnthropic,
                                                         served: ServerProcess) -> None:
    fake.script(Hang())
    with served.client() as api:
        response = api.post("/v1/claude-timeout", json={
            "messages": [{"role": "user", "content": "x"}], "max_tokens": 10})
        assert eventually(lambda: fake.inflight == 0)
    assert response.status_code == 504, response.text
    assert "execution timeout of 1 s" in response.json()["error"]


def test_a_reply_that_only_calls_a_tool_streams_as_it_is_stored(
        fake: FakeAnthropic, client: anthropic.Anthropic, served: ServerProcess) -> None:
    fake.script(Reply(text="", input_tokens=21,
                      tool_uses=(ToolUse("get_weather", {"city": "Lima"}, id="toolu_03"),)))
    with served.client() as api, api.stream("POST", "/v1/messages", json={
            "model": "claude-remote", "max_tokens": 50, "stream": True, "tools": [WEATHER],
            "messages": [{"role": "user", "content": "Lima?"}]}) as response:
        rid = response.headers["request-id"]
        events = [json.loads(line.removeprefix("data: ")) for line in response.iter_lines()
                  if line.startswith("data: ")]
        stored = json.loads(api.get(f"/v2/requests/{rid}").json()["output"])
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts == [{"type": "tool_use", "id": "toolu_03", "name": "get_weather",
                       "input": {}}]
    assert [b["type"] for b in stored["content"]] == ["tool_use"]
    usage = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert usage["input_tokens"] == 21  # the upstream's count, not admission's estimate


OPENAI_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def test_the_openai_sdk_runs_a_tool_loop(fake: FakeAnthropic, served: ServerProcess) -> None:
    gpt = openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)
    question = {"role": "user", "content": "What's the weather in Paris?"}
    fake.script(Reply(text="", tool_uses=(ToolUse("get_weather", {"city": "Paris"},
                                                  id="toolu_11"),)))
    first = gpt.chat.completions.create(model="claude-remote", messages=[question],
                                        tools=[OPENAI_WEATHER], tool_choice="required",
                                        parallel_tool_calls=False)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name) == ("toolu_11", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = fake.requests[-1].body
    assert sent is not None
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["tools"][0]["input_schema"] == OPENAI_WEATHER["function"]["parameters"]

    fake.script(Reply(text="18 C and sunny."))
    stream = gpt.chat.completions.create(
        model="claude-remote", tools=[OPENAI_WEATHER], stream=True, messages=[
            question, choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "toolu_11", "content": "18 C, sunny"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "18 C and sunny."
    sent = fake.requests[-1].body
    assert sent is not None
    assert sent["messages"][1]["content"] == [{"type": "tool_use", "id": "toolu_11",
                                               "name": "get_weather",
                                               "input": {"city": "Paris"}}]
    assert sent["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_11",
                                               "content": "18 C, sunny"}]


def test_streamed_tool_calls_reach_the_openai_sdk(fake: FakeAnthropic,
                                                 served: ServerProcess) -> None:
    gpt = openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)
    fake.script(Reply(text="Checking.", tool_uses=(
        ToolUse("get_weather", {"city": "Rome"}, id="toolu_12"),
        ToolUse("get_weather", {"city": "Oslo"}, id="toolu_13"))))
    chunks = list(gpt.chat.completions.create(
        model="claude-remote", tools=[OPENAI_WEATHER], stream=True,
        messages=[{"role": "user", "content": "Rome and Oslo?"}]))
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert [(c.index, c.id, json.loads(c.function.arguments)) for c in calls] == [
        (0, "toolu_12", {"city": "Rome"}), (1, "toolu_13", {"city": "Oslo"})]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_the_queue_surface_stores_tool_calls(fake: FakeAnthropic, served: ServerProcess) -> None:
    fake.script(Reply(text="", tool_uses=(ToolUse("get_weather", {"city": "Bern"},
                                                  id="toolu_21"),)))
    with served.client() as api:
        rid = api.post("/v2/claude-remote", json={
            "max_tokens": 50, "tools": [WEATHER],
            "messages": [{"role": "user", "content": "Bern?"}]}).json()["request_id"]
        assert eventually(lambda: api.get(f"/v2/requests/{rid}/status").json()["status"]
                        == "COMPLETED")
        output = json.loads(api.get(f"/v2/requests/{rid}").json()["output"])
    assert output["stop_reason"] == "tool_use"
    assert output["content"] == [{"type": "tool_use", "id": "toolu_21", "name": "get_weather",
                                  "input": {"city": "Bern"}}]
