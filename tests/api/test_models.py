"""``GET /v1/models`` and ``GET /v1/models/{id}``, as both official SDKs read them."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests._server import ServerProcess
from tests.conftest import new_key


def test_every_name_is_a_model_id(api: httpx.Client) -> None:
    page = api.get("/v1/models").json()
    ids = [m["id"] for m in page["data"]]
    assert ids[:2] == ["echo", "claude-3-haiku"]  # a slug, then its aliases
    assert (page["object"], page["has_more"]) == ("list", False)
    assert (page["first_id"], page["last_id"]) == (ids[0], ids[-1])
    alias = page["data"][1]
    assert alias["slug"] == "echo" and alias["display_name"] == "claude-3-haiku (echo)"
    assert (alias["object"], alias["type"], alias["owned_by"]) == ("model", "model", "stratus")
    assert isinstance(alias["created"], int) and alias["created_at"].endswith("Z")


def test_the_openai_sdk_lists_and_retrieves(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert {"echo", "claude-3-haiku", "echo-vision"} <= set(ids)
    model = client.models.retrieve("claude-3-haiku")
    assert (model.id, model.object, model.owned_by) == ("claude-3-haiku", "model", "stratus")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")


def test_the_anthropic_sdk_lists_and_retrieves(server: ServerProcess) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key=server.key, max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert {"echo", "claude-3-haiku"} <= set(ids)
    model = client.models.retrieve("echo-vision")
    assert (model.id, model.type, model.display_name) == ("echo-vision", "model", "echo-vision")
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-9")


def test_a_model_the_key_may_not_use_is_not_found(api: httpx.Client,
                                                  server: ServerProcess) -> None:
    key = new_key(api, "models-scoped", models=["echo-slow"])
    with server.client(key) as client:
        assert client.get("/v1/models/echo-slow").status_code == 200
        refused = client.get("/v1/models/echo")
    assert refused.status_code == 404
    assert "may not use it" in refused.json()["error"]
