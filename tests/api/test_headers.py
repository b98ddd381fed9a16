"""Rate-limit headers in each surface's names, and the cost header."""

from __future__ import annotations

import time
from datetime import datetime

from stratus.api._headers import cost_headers, limit_headers
from stratus.limits import Bucket, LimitState
from stratus.store import JobRecord, Metrics, Status
from tests.conftest import answer

STATE = LimitState(requests=Bucket(limit=60, remaining=59, reset=1.0),
                   tokens=Bucket(limit=1000, remaining=10, reset=59.4))


def test_openai_names_with_durations() -> None:
    assert limit_headers(STATE, anthropic=False) == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s", "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "10", "x-ratelimit-reset-tokens": "59.4s"}
    slow = LimitState(requests=Bucket(limit=1, remaining=0, reset=90.0))
    assert limit_headers(slow, anthropic=False)["x-ratelimit-reset-requests"] == "1m30s"


def test_anthropic_names_with_times() -> None:
    headers = limit_headers(STATE, anthropic=True)
    assert headers["anthropic-ratelimit-tokens-remaining"] == "10"
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-tokens-reset"])
    assert abs(reset.timestamp() - (time.time() + 59.4)) < 2
    assert not any(name.startswith("x-") for name in headers)


def record(status: Status, cost: float | None) -> JobRecord:
    done = status is Status.COMPLETED
    return JobRecord(id="r", account_id="a", model="m", requested_model="m", status=status,
                     request={}, created_at=0, attempts=1,
                     result=answer() if done else None,
                     metrics=Metrics(cost=cost or 0.0) if done else None)


def test_cost_header() -> None:
    assert cost_headers(record(Status.COMPLETED, 0.0001234)) == {"x-request-cost": "0.0001234"}
    # nano-dollar precision, no trailing zeros
    assert cost_headers(record(Status.COMPLETED, 2.4e-9)) == {"x-request-cost": "0.000000002"}
    assert cost_headers(record(Status.FAILED, None)) == {"x-request-cost": "0"}
    assert cost_headers(record(Status.QUEUED, None)) == {}
