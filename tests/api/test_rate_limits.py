"""Per-key rate limits over HTTP: bursts get 429 with the limit headers, never a 5xx."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

from tests._server import ServerProcess
from tests.conftest import new_key, user


def test_burst_above_requests_per_minute(api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "limits-rpm", requests_per_minute=5)

    def one(_: int) -> httpx.Response:
        with server.client(key) as client:
            return client.post("/v2/echo", json=user("hello there"))

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(12)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 5 + [429] * 7, codes
    ok = [r for r in responses if r.status_code == 200]
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == [0, 1, 2, 3, 4]
    for response in responses:
        assert response.headers["x-ratelimit-limit-requests"] == "5"
        assert response.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in response.headers  # no token limit set
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 12  # one request back every 12 s
    body = refused.json()
    assert body["type"] == "rate_limited" and "requests per minute" in body["error"]
    # another key of the same account is not affected
    other = new_key(api, "limits-rpm")
    with server.client(other) as client:
        response = client.post("/v2/echo", json=user("hi"))
        assert response.status_code == 200
        assert "x-ratelimit-limit-requests" not in response.headers


def test_tokens_per_minute_counts_input_and_max_tokens(api: httpx.Client,
                                                      server: ServerProcess) -> None:
    key = new_key(api, "limits-tpm", tokens_per_minute=100)
    with server.client(key) as client:
        first = client.post("/v1/echo", json={**user("one two three"), "max_tokens": 47})
        assert first.status_code == 200
        assert first.headers["x-ratelimit-remaining-tokens"] == "50"
        second = client.post("/v1/echo", json={**user("one two three"), "max_tokens": 57})
        assert second.status_code == 429
        assert "tokens per minute" in second.json()["error"]
        huge = client.post("/v1/echo", json={**user("one"), "max_tokens": 500})
        assert huge.status_code == 400
        assert "limited to 100 tokens per minute" in huge.json()["error"]


def test_anthropic_surface_names_its_headers(api: httpx.Client, server: ServerProcess) -> None:
    key = new_key(api, "limits-anthropic", requests_per_minute=1, tokens_per_minute=1000)
    body = {"model": "echo", "max_tokens": 10, **user("hi")}
    with server.client(key) as client:
        first = client.post("/v1/messages", json=body)
        assert first.status_code == 200
        assert first.headers["anthropic-ratelimit-requests-limit"] == "1"
        assert first.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert first.headers["anthropic-ratelimit-tokens-remaining"] == "989"
        reset = datetime.fromisoformat(first.headers["anthropic-ratelimit-requests-reset"])
        assert reset > datetime.now(UTC)
        assert "x-ratelimit-limit-requests" not in first.headers
        second = client.post("/v1/messages", json=body)
        assert second.status_code == 429
        assert second.json()["error"]["type"] == "rate_limit_error"
        assert second.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert int(second.headers["retry-after"]) >= 1


def test_limits_kept_in_redis_when_configured(make_server, redis_server) -> None:
    import redis

    from tests.conftest import SERVER_CONFIG

    server = make_server(SERVER_CONFIG + f'\n[redis]\nurl = "{redis_server.url}"\n')
    with server.client() as admin:
        key = new_key(admin, "limits-redis", requests_per_minute=2)
    with server.client(key) as client:
        codes = [client.post("/v2/echo", json=user("hi")).status_code for _ in range(3)]
        key_id = client.get("/v1/account").json()["key"]["id"]
    assert codes == [200, 200, 429]
    with redis.Redis.from_url(redis_server.url) as store:
        bucket = store.hgetall(f"stratus:ratelimit:{key_id}")
    assert float(bucket[b"requests:level"]) < 1
