"""``GET /metrics``: what a live server counts as requests, jobs, refusals and webhooks go by,
read back with Prometheus's own parser (deltas: the shared server serves other tests too)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._server import ServerProcess
from tests.conftest import eventually, new_key, user

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(server: ServerProcess, headers: dict[str, str] | None = None) -> dict[Sample, float]:
    response = httpx.get(server.url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_completed_job_is_counted_with_its_tokens_cost_and_times(
        api: httpx.Client, server: ServerProcess) -> None:
    before = scrape(server)
    response = api.post("/v1/echo-priced", json={**user("one two three"), "max_tokens": 5})
    assert response.status_code == 200
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("stratus_http_requests_total", surface="segmind", model="echo-priced",
                 code="200") == 1
    assert delta("stratus_jobs_total", model="echo-priced", status="COMPLETED",
                 error_type="") == 1
    assert delta("stratus_tokens_total", model="echo-priced", kind="input") == 3
    assert delta("stratus_tokens_total", model="echo-priced", kind="output") == 3
    assert delta("stratus_charged_usd_total", model="echo-priced") == pytest.approx(0.006)
    for histogram in ("stratus_time_to_first_token_seconds", "stratus_job_duration_seconds",
                      "stratus_queue_wait_seconds", "stratus_output_tokens_per_second"):
        assert delta(histogram + "_count", model="echo-priced") == 1, histogram
    assert value(after, "stratus_engine_slots", model="echo", state="total") == 16
    assert value(after, "stratus_workers", model="echo") == 1
    assert ("stratus_queue_depth", (("model", "echo-single"),)) in after


def test_waiting_jobs_and_cancels_are_seen(api: httpx.Client, server: ServerProcess) -> None:
    before = scrape(server)
    ids = [api.post("/v2/echo-single", json=user("w " * 40)).json()["request_id"]
           for _ in range(3)]
    waiting = scrape(server)
    assert value(waiting, "stratus_queue_depth", model="echo-single") >= 1
    assert value(waiting, "stratus_queue_oldest_wait_seconds", model="echo-single") > 0
    for rid in ids:
        api.post(f"/v2/requests/{rid}/cancel")
    assert eventually(lambda: value(scrape(server), "stratus_jobs_total", model="echo-single",
                                    status="FAILED", error_type="cancelled")
                      - value(before, "stratus_jobs_total", model="echo-single",
                              status="FAILED", error_type="cancelled") == 3)


def test_refusals_are_counted_by_reason(api: httpx.Client, server: ServerProcess) -> None:
    before = scrape(server)
    limited = new_key(api, "telemetry-limited", requests_per_minute=1)
    broke = new_key(api, "telemetry-broke", credits=0.0)
    with server.client(limited) as client:
        assert client.post("/v1/echo", json=user("a")).status_code == 200
        assert client.post("/v1/echo", json=user("a")).status_code == 429
    with server.client(broke) as client:
        assert client.post("/v1/echo-priced", json=user("a")).status_code == 406
    after = scrape(server)
    for reason in ("rate_limit", "credits"):
        assert value(after, "stratus_refusals_total", reason=reason) \
            - value(before, "stratus_refusals_total", reason=reason) == 1, reason


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    receiver.shutdown()


def test_webhook_deliveries_are_counted(api: httpx.Client, server: ServerProcess,
                                        hook: str) -> None:
    before = value(scrape(server), "stratus_webhook_deliveries_total", outcome="delivered")
    assert api.post("/v2/echo", params={"webhook": hook}, json=user("hi")).status_code == 200
    assert eventually(lambda: value(scrape(server), "stratus_webhook_deliveries_total",
                                    outcome="delivered") - before >= 1)


def test_metrics_can_take_an_admin_key(make_server) -> None:
    server = make_server("[server]\nmetrics_auth = true\n\n[[models]]\nslug = \"echo\"\n")
    assert httpx.get(server.url + "/metrics").status_code == 401
    with server.client() as admin:
        plain = new_key(admin, "telemetry-plain")
    assert httpx.get(server.url + "/metrics",
                     headers={"x-api-key": plain}).status_code == 403
    assert ("stratus_queue_depth", (("model", "echo"),)) in scrape(
        server, {"x-api-key": server.key})
