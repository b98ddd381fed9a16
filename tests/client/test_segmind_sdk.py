"""The segmind SDK (>= 1.1) pointed at Stratus: the hosted service's own client, unchanged."""

from __future__ import annotations

import pytest
import segmind
from segmind.v2 import InferenceFailed

from tests._server import ServerProcess
from tests.conftest import words

PAYLOAD = {
    "instruction": "You are a helpful assistant.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


@pytest.fixture
def client(server: ServerProcess) -> segmind.SegmindClient:
    return segmind.SegmindClient(api_key=server.key, base_url=server.url + "/v1")


def test_chat(client: segmind.SegmindClient) -> None:
    reply = client.chat("claude-3-haiku", **PAYLOAD)
    assert reply.text == "What is the capital of France?"


def test_submit_chat_and_wait(client: segmind.SegmindClient) -> None:
    job = client.submit_chat("claude-3-haiku", **PAYLOAD)
    assert job.request_id
    assert job.wait(timeout=600).text == "What is the capital of France?"
    assert job.status()["status"] == "COMPLETED"


def test_chat_sync(client: segmind.SegmindClient) -> None:
    assert client.chat_sync("claude-3-haiku", **PAYLOAD).text == \
        "What is the capital of France?"


def test_failed_job_raises_inference_failed(client: segmind.SegmindClient) -> None:
    job = client.submit_chat("echo-timeout",
                             messages=[{"role": "user", "content": words(20)}])
    with pytest.raises(InferenceFailed):
        job.wait(timeout=60)
