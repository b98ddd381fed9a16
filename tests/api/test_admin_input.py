"""Admin credit amounts that are not finite, or too large to count in nano-dollars: a 400
that names the field, and nothing changes."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import new_key

# JSON as a careless client may send it: Python's json (and so the server's parser) reads
# NaN and Infinity, and 1e400 as Infinity. 9.3e9 USD is past an int64 of nano-dollars.
BAD_AMOUNTS = ["NaN", "Infinity", "-Infinity", "1e400", "1e300", "9.3e9", "-9.3e9",
               "1000000000.5", "100000000000000000000000000000"]
BAD_BALANCES = [*BAD_AMOUNTS, "-1"]
NOT_FINITE = {"NaN", "Infinity", "-Infinity", "1e400"}  # refused as not JSON numbers


def send(api: httpx.Client, method: str, path: str, raw: str) -> httpx.Response:
    return api.request(method, path, content=raw.encode(),
                       headers={"content-type": "application/json"})


def fresh_account(api: httpx.Client, prefix: str, credits: float) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    new_key(api, name, credits=credits)
    return name


def balance(api: httpx.Client, account: str) -> float | None:
    response = api.get(f"/v1/admin/accounts/{account}")
    assert response.status_code == 200, response.text
    return response.json()["credits"]["balance"]


def assert_names(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "invalid_request"
    assert body["error"].startswith(f"{field} must be a finite number"), body
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_add_credits_refuses_amounts_that_cannot_be_counted(api: httpx.Client,
                                                             amount: str) -> None:
    account = fresh_account(api, "admin-input-add", 5)
    refused = send(api, "POST", f"/v1/admin/accounts/{account}/credits",
                   f'{{"amount": {amount}, "note": "x"}}')
    assert_names(refused, "amount")
    if amount not in NOT_FINITE:
        assert "-1000000000 to 1000000000" in refused.json()["error"]
    assert balance(api, account) == 5.0


@pytest.mark.parametrize("value", BAD_BALANCES)
def test_set_credits_refuses_balances_that_cannot_be_counted(api: httpx.Client,
                                                              value: str) -> None:
    account = fresh_account(api, "admin-input-set", 7)
    refused = send(api, "PUT", f"/v1/admin/accounts/{account}/credits",
                   f'{{"balance": {value}}}')
    assert_names(refused, "balance")
    if value not in NOT_FINITE:
        assert "from 0 to 1000000000" in refused.json()["error"]
    assert balance(api, account) == 7.0


@pytest.mark.parametrize("value", BAD_BALANCES)
def test_create_key_refuses_credits_that_cannot_be_counted(api: httpx.Client,
                                                           value: str) -> None:
    account = f"admin-input-new-{uuid.uuid4().hex[:8]}"
    refused = send(api, "POST", "/v1/admin/keys",
                   f'{{"account": "{account}", "credits": {value}}}')
    assert_names(refused, "credits")
    assert api.get(f"/v1/admin/accounts/{account}").status_code == 404  # nothing made


def test_the_largest_amounts_are_accepted(api: httpx.Client) -> None:
    account = fresh_account(api, "admin-input-max", 1_000_000_000)
    assert balance(api, account) == 1e9
    taken = api.post(f"/v1/admin/accounts/{account}/credits", json={"amount": -1_000_000_000})
    assert taken.status_code == 200, taken.text
    assert taken.json()["credits"]["balance"] == 0.0
    given = api.put(f"/v1/admin/accounts/{account}/credits", json={"balance": 1e9})
    assert given.status_code == 200, given.text
    assert given.json()["credits"]["balance"] == 1e9


@pytest.mark.parametrize("field", ["requests_per_minute", "tokens_per_minute"])
def test_create_key_refuses_rate_limits_past_an_int64(api: httpx.Client, field: str) -> None:
    refused = api.post("/v1/admin/keys", json={"account": "admin-input-rpm",
                                               field: 10**20})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"].startswith(f"{field} "), refused.text
