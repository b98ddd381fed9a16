"""How an ended job maps onto the sync route's response, without HTTP."""

from __future__ import annotations

import json

import pytest

from stratus import views
from stratus.api.segmind import serving
from stratus.errors import EngineFailed, GatewayTimeout, UnprocessableRequest
from stratus.store import ErrorType, JobRecord, Metrics, Status
from tests.conftest import answer

LINKS = serving.Links("http://h:1/")


def record(status: Status, **kw) -> JobRecord:
    return JobRecord(id="r", account_id="a", model="m", requested_model="m", status=status,
                     request={}, created_at=0.0, attempts=1, **kw)


@pytest.mark.parametrize(("error_type", "cls", "code"), [
    (ErrorType.TIMEOUT, GatewayTimeout, 504),
    (ErrorType.ENGINE, EngineFailed, 502),
    (ErrorType.WORKER_LOST, EngineFailed, 502),
    (ErrorType.CANCELLED, UnprocessableRequest, 422),
])
def test_failed_job_on_the_sync_route(error_type: str, cls: type, code: int) -> None:
    with pytest.raises(cls) as info:
        serving.sync_outcome(record(Status.FAILED, error="why", error_type=error_type), LINKS)
    assert info.value.status_code == code
    assert info.value.message == "why"
    assert info.value.extra == {"request_id": "r", "status": "FAILED"}


def test_still_running_is_504_with_links() -> None:
    code, body = serving.sync_outcome(record(Status.PROCESSING), LINKS)
    assert code == 504
    assert body["status_url"] == "http://h:1/v2/requests/r/status"
    assert body["response_url"] == "http://h:1/v2/requests/r"


def test_completed_result_body_has_output_as_json_text() -> None:
    message = answer("hi")
    metrics = Metrics(queue_ms=1, inference_ms=2, ttft_ms=1, input_tokens=3, output_tokens=4,
                      output_tokens_per_s=5.0, cost=0.1)
    code, body = serving.result_body(record(Status.COMPLETED, result=message, metrics=metrics))
    assert code == 200 and json.loads(body["output"]) == message.to_dict()
    assert body["metrics"] == metrics.to_dict()
    assert serving.result_body(record(Status.QUEUED))[0] == 202
    assert serving.result_body(record(Status.FAILED, error="x"))[0] == 422


def test_timestamps_are_iso_utc() -> None:
    assert views.iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert views.iso(None) is None
