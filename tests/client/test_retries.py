"""Retry behaviour of the SDK: which statuses, how long, and that a retried submit carries
the same Idempotency-Key. The server side is a transport that answers from a script."""

from __future__ import annotations

import httpx
import pytest

import stratus
from stratus.client import _base

SUBMITTED = {"request_id": "r1", "status": "QUEUED", "status_url": "", "response_url": "",
             "cancel_url": ""}


class Script:
    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("stratus.client._client.time.sleep", slept.append)
    return slept


def client_for(script: Script, max_retries: int = 2) -> stratus.Client:
    http = httpx.Client(transport=httpx.MockTransport(script))
    return stratus.Client(api_key="k" * 20, base_url="http://stratus.test",
                          max_retries=max_retries, http_client=http)


def test_429_honours_retry_after_and_reuses_idempotency_key(sleeps: list[float]) -> None:
    script = Script(
        httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "3"}),
        httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "1"}),
        httpx.Response(200, json=SUBMITTED),
    )
    job = client_for(script).submit_chat("m", messages=[])
    assert job.request_id == "r1"
    assert sleeps == [3.0, 1.0]
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1


def test_backoff_without_retry_after_grows(sleeps: list[float]) -> None:
    script = Script(httpx.Response(500), httpx.Response(502), httpx.Response(200, json=SUBMITTED))
    client_for(script).submit_chat("m")
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_gives_up_after_max_retries(sleeps: list[float]) -> None:
    script = Script(*(httpx.Response(503, json={"error": "down"}) for _ in range(3)))
    with pytest.raises(stratus.InternalServerError) as info:
        client_for(script).submit_chat("m")
    assert info.value.status_code == 503 and info.value.message == "down"
    assert len(script.requests) == 3 and len(sleeps) == 2


def test_rate_limit_error_after_retries(sleeps: list[float]) -> None:
    script = Script(httpx.Response(429, json={"error": "limit"}, headers={"Retry-After": "0"}))
    with pytest.raises(stratus.RateLimitError):
        client_for(script, max_retries=0).submit_chat("m")
    assert sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 406, 409, 413, 422])
def test_client_errors_are_not_retried(sleeps: list[float], status: int) -> None:
    script = Script(httpx.Response(status, json={"error": "no", "request_id": "x"}))
    with pytest.raises(stratus.APIStatusError) as info:
        client_for(script).submit_chat("m")
    assert info.value.status_code == status
    assert type(info.value) is stratus.client._exceptions.STATUS_ERRORS[status]
    assert len(script.requests) == 1 and sleeps == []


def test_failed_job_502_is_final_not_retried(sleeps: list[float]) -> None:
    script = Script(httpx.Response(502, json={"error": "the engine failed: boom",
                                              "request_id": "r9", "status": "FAILED"}))
    with pytest.raises(stratus.InferenceFailed) as info:
        client_for(script).chat_sync("m")
    assert info.value.request_id == "r9"
    assert len(script.requests) == 1


def test_connection_errors_are_retried(sleeps: list[float]) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=SUBMITTED))
    assert client_for(script).submit_chat("m").request_id == "r1"
    script = Script(*(httpx.ConnectError("refused") for _ in range(3)))
    with pytest.raises(stratus.APIConnectionError):
        client_for(script).submit_chat("m")


def test_retry_after_http_date_and_cap() -> None:
    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert _base.retry_delay(0, response) == 0.0
    response = httpx.Response(429, headers={"Retry-After": "3600"})
    assert _base.retry_delay(0, response) == _base.MAX_RETRY_DELAY


@pytest.mark.anyio
async def test_async_retries_honour_retry_after(monkeypatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("stratus.client._async_client.asyncio.sleep", fake_sleep)
    script = Script(httpx.Response(429, headers={"Retry-After": "2"}),
                    httpx.Response(200, json=SUBMITTED))
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    client = stratus.AsyncClient(api_key="k" * 20, base_url="http://stratus.test",
                                 http_client=http)
    job = await client.submit_chat("m")
    assert job.request_id == "r1" and slept == [2.0]
    assert script.requests[0].headers["idempotency-key"] == \
        script.requests[1].headers["idempotency-key"]
