"""Keys limited to models (403 naming the model) and admin keys for the admin API."""

from __future__ import annotations

import httpx

from tests._server import ServerProcess
from tests.conftest import new_key, user


def test_model_outside_the_keys_scope_is_403(api: httpx.Client,
                                             server: ServerProcess) -> None:
    key = new_key(api, "scoped", models=["claude-3-haiku"])
    with server.client(key) as client:
        # allowed by alias, and so by slug too
        assert client.post("/v1/claude-3-haiku", json=user("hi")).status_code == 200
        assert client.post("/v1/echo", json=user("hi")).status_code == 200
        refused = client.post("/v2/echo-slow", json=user("hi"))
        assert refused.status_code == 403
        assert refused.json()["type"] == "permission_error"
        assert "may not use model 'echo-slow'" in refused.json()["error"]
        assert "claude-3-haiku" in refused.json()["error"]
        anthropic = client.post("/v1/messages", json={"model": "echo-slow", "max_tokens": 5,
                                                      **user("hi")})
        assert anthropic.status_code == 403
        assert anthropic.json()["error"]["type"] == "permission_error"
        counted = client.post("/v1/messages/count_tokens",
                              json={"model": "echo-slow", **user("hi")})
        assert counted.status_code == 403
        chat = client.post("/v1/chat/completions", json={"model": "echo-slow", **user("hi")})
        assert chat.status_code == 403
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [
            "echo", "claude-3-haiku"]
        # nothing was queued for the refused requests
        assert {e["model"] for e in client.get("/v1/requests").json()["data"]} == {
            "claude-3-haiku", "echo"}


def test_admin_routes_need_an_admin_key(api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "not-admin")
    with server.client(key) as client:
        for method, path in (("GET", "/v1/admin/keys"), ("POST", "/v1/admin/keys"),
                             ("GET", "/v1/admin/accounts")):
            response = client.request(method, path, json={})
            assert response.status_code == 403, (method, path)
            assert "needs an admin key" in response.json()["error"]


def test_admin_key_api_matches_the_cli(api: httpx.Client, server: ServerProcess) -> None:
    created = api.post("/v1/admin/keys", json={
        "account": "admin-made", "name": "ci", "models": ["echo"], "requests_per_minute": 60,
        "tokens_per_minute": 10000, "credits": 2.5})
    assert created.status_code == 201, created.text
    body = created.json()
    secret, key = body["secret"], body["key"]
    assert secret.startswith("sk-stratus-") and secret not in str(key)
    assert key["models"] == ["echo"] and key["admin"] is False
    assert key["rate_limits"] == {"requests_per_minute": 60, "tokens_per_minute": 10000}
    with server.client(secret) as client:
        me = client.get("/v1/account").json()
        assert me["name"] == "admin-made" and me["credits"]["balance"] == 2.5
        assert me["key"]["id"] == key["id"] and me["webhook"]["secret"].startswith("whsec_")
    listed = api.get("/v1/admin/keys").json()["data"]
    assert any(k["id"] == key["id"] for k in listed)
    assert all("secret" not in k for k in listed)
    revoked = api.post(f"/v1/admin/keys/{key['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    with server.client(secret) as client:
        assert client.get("/v1/account").status_code == 401
    assert api.post("/v1/admin/keys/key_nope/revoke").status_code == 404


def test_admin_api_rejects_bad_bodies(api: httpx.Client) -> None:
    unknown_model = api.post("/v1/admin/keys", json={"account": "x", "models": ["gpt-9"]})
    assert unknown_model.status_code == 400 and "gpt-9" in unknown_model.json()["error"]
    unknown_field = api.post("/v1/admin/keys", json={"account": "x", "rpm": 5})
    assert unknown_field.status_code == 400 and "rpm" in unknown_field.json()["error"]
    bad_limit = api.post("/v1/admin/keys", json={"account": "x", "requests_per_minute": 0})
    assert bad_limit.status_code == 400 and "requests_per_minute" in bad_limit.json()["error"]
    existing = api.post("/v1/admin/keys", json={"account": "default", "credits": 5})
    assert existing.status_code == 400 and "already exists" in existing.json()["error"]
