"""``GET /docs``: the API reference, served whole by the server (no asset from elsewhere)."""

from __future__ import annotations

import re

import httpx


def test_the_reference_and_its_assets_are_served_here(server) -> None:
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/openapi.json" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        response = httpx.get(server.url + asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/messages", "/v1/chat/completions", "/v2/{model}", "/v1/models/{model_id}"):
        assert path in spec["paths"], path
