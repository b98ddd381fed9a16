"""What a process tells Prometheus at ``GET /metrics``: its own counters and histograms (each
role's process keeps its own, and each is scraped: an API node counts requests and refusals,
a worker the jobs it ran), and gauges read at scrape time from the shared store (queue depth
and oldest wait per model) and from the engines here (slots busy and total).

Names follow Prometheus's conventions: ``stratus_…_total`` counters, ``_seconds``
histograms, base units (USD, tokens).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from stratus.runtime import Runtime
    from stratus.store import JobRecord, Metrics

SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TOKEN_RATES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
CONTENT_TYPE = CONTENT_TYPE_LATEST
STORE_WAIT = 2.0  # seconds a scrape waits for the store's gauges
log = logging.getLogger("stratus.telemetry")


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("stratus_http_requests", "HTTP requests answered",
                                ["surface", "model", "code"], registry=r)
        self.refusals = Counter("stratus_refusals", "Requests refused before they were "
                                "queued: rate_limit, queue_full, credits", ["reason"],
                                registry=r)
        self.jobs = Counter("stratus_jobs", "Jobs ended, by final state and error type",
                            ["model", "status", "error_type"], registry=r)
        self.tokens = Counter("stratus_tokens", "Tokens of ended jobs: input (cached_input "
                              "of it read from the prompt cache) and output",
                              ["model", "kind"], registry=r)
        self.charged = Counter("stratus_charged_usd", "USD charged for jobs", ["model"],
                               registry=r)
        self.ttft = Histogram("stratus_time_to_first_token_seconds", "From the start of "
                              "inference to the first text", ["model"], buckets=SECONDS,
                              registry=r)
        self.latency = Histogram("stratus_job_duration_seconds", "From submit to the end of "
                                 "a completed job", ["model"], buckets=SECONDS, registry=r)
        self.queue_wait = Histogram("stratus_queue_wait_seconds", "Time completed jobs "
                                    "waited in the queue", ["model"], buckets=SECONDS,
                                    registry=r)
        self.speed = Histogram("stratus_output_tokens_per_second", "Output speed of "
                               "completed jobs", ["model"], buckets=TOKEN_RATES, registry=r)
        self.webhooks = Counter("stratus_webhook_deliveries", "Webhook delivery attempts by "
                                "outcome: delivered, failed (retried), given_up", ["outcome"],
                                registry=r)
        self.queue_depth = Gauge("stratus_queue_depth", "Jobs waiting", ["model"], registry=r)
        self.oldest_wait = Gauge("stratus_queue_oldest_wait_seconds", "How long the oldest "
                                 "waiting job has waited", ["model"], registry=r)
        self.slots = Gauge("stratus_engine_slots", "Requests an engine here runs at once "
                           "(busy) and may run (total)", ["model", "state"], registry=r)
        self.reuse = Gauge("stratus_prompt_reuse_ratio", "Of the input tokens of ended "
                           "jobs, the share read from the prompt cache", ["model"],
                           registry=r)
        self.workers = Gauge("stratus_workers", "Live workers serving the model (as they "
                             "report to PostgreSQL; on SQLite this process's own)", ["model"],
                             registry=r)
        self.cold_starts = Histogram("stratus_cold_start_seconds", "Loads of on-demand "
                                     "models (the first job after one waits for it)",
                                     ["model"], buckets=SECONDS, registry=r)
        self.model_loaded = Gauge("stratus_model_loaded", "1 while the model is loaded in "
                                  "this worker, 0 while it is not (on demand)", ["model"],
                                  registry=r)
        self.store_up = Gauge("stratus_store_up", "1 when the last scrape read the shared "
                              "store, 0 when it did not answer in time", registry=r)
        self._input: dict[str, tuple[int, int]] = {}  # model -> (input, cached input)

    # -- as things happen -------------------------------------------------------------------

    def job_ended(self, model: str, status: str, error_type: str | None,
                  metrics: Metrics | None) -> None:
        self.jobs.labels(model, status, error_type or "").inc()
        if metrics is None:
            return
        self.tokens.labels(model, "input").inc(metrics.input_tokens)
        self.tokens.labels(model, "cached_input").inc(metrics.cached_input_tokens)
        seen, cached = self._input.get(model, (0, 0))
        self._input[model] = (seen + metrics.input_tokens, cached + metrics.cached_input_tokens)
        self.tokens.labels(model, "output").inc(metrics.output_tokens)
        self.charged.labels(model).inc(metrics.cost)
        if status == "COMPLETED":
            self.ttft.labels(model).observe((metrics.ttft_ms or 0) / 1000)
            self.queue_wait.labels(model).observe(metrics.queue_ms / 1000)
            self.latency.labels(model).observe((metrics.queue_ms + metrics.inference_ms) / 1000)
            if metrics.output_tokens_per_s is not None:
                self.speed.labels(model).observe(metrics.output_tokens_per_s)

    def record_ended(self, record: JobRecord) -> None:
        self.job_ended(record.model, record.status.value, record.error_type, record.metrics)

    # -- at scrape time ---------------------------------------------------------------------

    async def render(self, runtime: Runtime) -> bytes:
        """The shared store's gauges are read within ``STORE_WAIT`` s: when it does not
        answer, they keep their last values and this process's own still come out."""
        try:
            async with asyncio.timeout(STORE_WAIT):
                await self._from_store(runtime)
        except Exception as exc:  # the database is down: say so, and what is known here
            log.warning("metrics without the store's gauges: %s", exc)
            self.store_up.set(0)
        else:
            self.store_up.set(1)
        if runtime.worker is not None:
            for spec in runtime.worker.models:
                self.slots.labels(spec.slug, "busy").set(runtime.worker.busy(spec.slug))
                loaded = runtime.worker.residency.claimable(spec.slug)
                self.slots.labels(spec.slug, "total").set(
                    spec.engine.capacity() if loaded else 0)
        for model, (seen, cached) in self._input.items():
            self.reuse.labels(model).set(cached / seen if seen else 0.0)
        return generate_latest(self.registry)

    async def _from_store(self, runtime: Runtime) -> None:
        stats = await runtime.store.queue_stats()
        for spec in runtime.models:
            depth, wait = stats.get(spec.slug, (0, 0.0))
            self.queue_depth.labels(spec.slug).set(depth)
            self.oldest_wait.labels(spec.slug).set(wait)
        reports = await runtime.store.model_health()
        served = {spec.slug for spec in runtime.worker.models} if runtime.worker else set()
        for spec in runtime.models:
            count = len(reports.get(spec.slug, ())) or int(spec.slug in served)
            self.workers.labels(spec.slug).set(count)
