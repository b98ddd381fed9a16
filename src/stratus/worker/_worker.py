"""The worker: claims jobs for the models it serves, runs them on their engines, records
the outcome.

Each claimed job runs as its own task beside a watcher that renews the lease and notices a
cancel (or a lost lease) at once, through the store's change notification. Per model, at most
as many jobs run at a time as its engine's capacity (the model's ``batch_slots``, an
upstream's ``max_concurrency``, none while an upstream cools down), all handed to the engine
together so it can batch them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from stratus.engines import (
    EngineBusy,
    Finished,
    GenerationRequest,
    RequestRejected,
    TextDelta,
    ToolCall,
)
from stratus.models import ModelRegistry, ModelSpec
from stratus.outcomes import Outcomes
from stratus.policy import ContentPolicy
from stratus.store import Claim, ErrorType, JobRecord, JobStore, Metrics, Status
from stratus.streams import LocalTokenStream, TokenStream
from stratus.telemetry import Telemetry
from stratus.worker._events import Busy, Completed, Failed, Lost, Outcome, Released
from stratus.worker._result import message_body, metrics

log = logging.getLogger("stratus.worker")

MAX_HANDBACKS = 20  # a job a busy engine handed back this often fails


COOLDOWN_LOOK = 1.0  # seconds between looks at an engine that takes nothing, at most


def _until_probe(spec: ModelSpec) -> float:
    """Seconds until an engine that takes nothing now may take work again."""
    until = spec.engine.health().until
    return COOLDOWN_LOOK if until is None else min(max(until - time.time(), 0.01), COOLDOWN_LOOK)


class PolicyBlocked(Exception):
    """The output matched the content policy: the generation stops there."""


class _Progress:
    """How far a generation got: its metrics when it ends, or when it is stopped."""

    def __init__(self, spec: ModelSpec, queued_for: float) -> None:
        self.config = spec.config
        self.queued_for = queued_for
        self.started = time.time()
        self.first_token: float | None = None
        self.input_tokens = 0
        self.cached_input = 0
        self.output_tokens = 0

    def delta(self, event: TextDelta) -> None:
        self.first_token = self.first_token or time.time()
        self.input_tokens = max(self.input_tokens, event.input_tokens)
        self.output_tokens = max(self.output_tokens, event.output_tokens)

    def metrics(self) -> Metrics:
        now = time.time()
        return metrics(self.config, self.input_tokens, self.output_tokens, self.queued_for,
                       now - self.started, (self.first_token or now) - self.started,
                       self.cached_input)


class Worker:
    def __init__(self, store: JobStore, models: ModelRegistry, *, lease_seconds: float,
                 sweep_interval: float, worker_id: str | None = None,
                 bus: TokenStream | None = None, outcomes: Outcomes | None = None,
                 policy: ContentPolicy | None = None,
                 max_handbacks: int = MAX_HANDBACKS,
                 telemetry: Telemetry | None = None) -> None:
        """``max_handbacks``: how many times a job may be handed back by a busy engine before
        it fails."""
        self.id = worker_id or "worker-" + uuid.uuid4().hex[:12]
        self._bus: TokenStream = bus or LocalTokenStream()
        self._store = store
        self._outcomes = outcomes
        self._policy = policy
        self._models = models
        self._heartbeat = max(lease_seconds / 3, 0.05)
        self._sweep_interval = sweep_interval
        self._running: dict[str, asyncio.Task[Outcome]] = {}
        self._inflight: dict[str, int] = {spec.slug: 0 for spec in models}
        self._slot_freed = asyncio.Event()
        self._draining = False
        self._releasing = False
        self._loop_task: asyncio.Task[None] | None = None
        self._max_handbacks = max_handbacks
        self._telemetry = telemetry
        self._paused: dict[str, float] = {}  # model -> monotonic time its engine is busy until
        self._reported: dict[str, dict[str, Any]] | None = None
        self._next_report = 0.0

    @property
    def models(self) -> ModelRegistry:
        """The models this worker runs."""
        return self._models

    @property
    def alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def running(self) -> int:
        return len(self._running)

    def busy(self, slug: str) -> int:
        """Jobs of model ``slug`` running here now."""
        return self._inflight.get(slug, 0)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name=f"{self.id}-loop")

    def drain(self) -> None:
        """Stop claiming new jobs; running ones go on."""
        self._draining = True
        self._slot_freed.set()

    async def wait_idle(self, timeout: float) -> None:
        """Until no job runs here, or ``timeout`` passes."""
        tasks = list(self._running.values())
        if tasks and timeout > 0:
            await asyncio.wait(tasks, timeout=timeout)

    async def stop(self, grace: float) -> None:
        """Drain, give running jobs ``grace`` seconds, hand the rest back to the queue."""
        self.drain()
        if self._loop_task is not None:
            await self._loop_task
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            if pending:
                self._releasing = True
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    # -- claiming --------------------------------------------------------------------------

    async def _report(self) -> None:
        """Tell processes without engines (API nodes) what this worker's engines say."""
        health = {spec.slug: spec.state() for spec in self._models}
        now = time.monotonic()
        if health != self._reported or now >= self._next_report:
            await self._store.report_health(self.id, health)
            self._reported, self._next_report = health, now + self._heartbeat

    async def _loop(self) -> None:
        next_sweep = 0.0
        while not self._draining:
            try:
                await self._report()
                now = time.monotonic()
                if now >= next_sweep:
                    report = await self._store.sweep()
                    if self._outcomes is not None:
                        await self._outcomes.after_sweep(report)
                    await self._count_swept(report.failed)
                    next_sweep = now + self._sweep_interval
                wait = max(next_sweep - time.monotonic(), 0.0)
                now = time.monotonic()
                paused = [until for until in self._paused.values() if until > now]
                if paused:  # look again when the first busy engine may take work
                    wait = min(wait, min(paused) - now)
                free = []
                for spec in self._models:
                    capacity = spec.engine.capacity()
                    if capacity == 0:  # an upstream cooling down: look again at its probe
                        wait = min(wait, _until_probe(spec))
                    elif (self._inflight.get(spec.slug, 0) < capacity
                          and self._paused.get(spec.slug, 0.0) <= now):
                        free.append(spec.slug)
                if not free:
                    self._slot_freed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_freed.wait(), wait)
                    continue
                claim = await self._store.claim(free, self.id)
                if claim is None:
                    await self._store.wait_for_work(wait)
                    continue
                self._launch(claim)
            except Exception:
                log.exception("worker loop error; retrying in 1 s")
                await asyncio.sleep(1.0)

    def _launch(self, claim: Claim) -> None:
        job_id, slug = claim.job.id, claim.job.model
        self._inflight[slug] = self._inflight.get(slug, 0) + 1
        task = asyncio.create_task(self._run(claim), name=f"job-{job_id}")
        self._running[job_id] = task

        def done(_: asyncio.Task[Outcome]) -> None:
            self._running.pop(job_id, None)
            self._inflight[slug] -= 1
            self._slot_freed.set()

        task.add_done_callback(done)

    # -- running one job -------------------------------------------------------------------

    async def _run(self, claim: Claim) -> Outcome:
        job_id, attempt = claim.job.id, claim.token
        await self._bus.start(job_id, attempt)
        try:
            if self._outcomes is not None:
                await self._outcomes.started(claim.job)
            outcome = await self._attempt(claim)
            ended: JobRecord | None = None
            if isinstance(outcome, Completed):
                ended = await self._store.complete(claim, outcome.result, outcome.metrics)
            elif isinstance(outcome, Failed):
                ended = await self._store.fail(claim, outcome.error, outcome.error_type)
            elif isinstance(outcome, Released) and await self._store.release(claim):
                return outcome
            elif isinstance(outcome, Busy) and await self._store.release(claim, busy=True):
                self._paused[claim.job.model] = time.monotonic() + outcome.retry_after
                self._slot_freed.set()
                return outcome
            used = outcome.metrics if isinstance(outcome, Completed | Lost | Released) else None
            await self._count(claim, ended, used)
            if self._outcomes is None:
                return outcome
            if ended is not None:
                await self._outcomes.worker_ended(ended)
                return outcome
            # cancelled (or taken over) while it ran: settled here, with what it generated
            if used is not None and used.output_tokens > 0:
                await self._store.record_usage(claim, used)
            await self._outcomes.ended(claim.job.id)
            return outcome
        finally:
            await self._bus.end(job_id, attempt)

    async def _count(self, claim: Claim, ended: JobRecord | None,
                     used: Metrics | None) -> None:
        """The job's end, if this worker saw it: ended here, or cancelled while it ran (a
        job taken over by another worker is that worker's to count)."""
        if self._telemetry is None:
            return
        if ended is not None:
            self._telemetry.record_ended(ended)
            return
        latest = await self._store.get(claim.job.id)
        if latest is not None and latest.error_type == ErrorType.CANCELLED:
            self._telemetry.job_ended(latest.model, Status.FAILED.value, ErrorType.CANCELLED,
                                      used)

    async def _count_swept(self, job_ids: tuple[str, ...]) -> None:
        """Jobs the sweep failed (their workers were lost too often)."""
        if self._telemetry is None:
            return
        for job_id in job_ids:
            record = await self._store.get(job_id)
            if record is not None:
                self._telemetry.record_ended(record)

    async def _attempt(self, claim: Claim) -> Outcome:
        job = claim.job
        try:
            spec = self._models.resolve(job.model)
            request = GenerationRequest.model_validate(job.request)
        except Exception as exc:
            return Failed(f"this server cannot run the request: {exc}", ErrorType.ENGINE)
        queued_for = (job.started_at or job.created_at) - job.created_at
        progress = _Progress(spec, queued_for)
        generation = asyncio.create_task(
            self._generate(job.id, spec, request, job.requested_model, progress,
                           claim.token))
        watcher = asyncio.create_task(self._watch(claim, generation))
        try:
            return await asyncio.shield(generation)
        except asyncio.CancelledError:
            if self._releasing:
                generation.cancel()
                await asyncio.gather(generation, return_exceptions=True)
                return Released(progress.metrics())
            if generation.cancelled():
                return Lost(progress.metrics())
            raise
        except PolicyBlocked as exc:
            return Failed(str(exc), ErrorType.POLICY)
        except EngineBusy as exc:
            if progress.first_token is not None:  # text was sent: it cannot start again
                return Failed(f"the engine failed: {exc}", ErrorType.ENGINE)
            bound = self._max_handbacks if exc.tries is None \
                else min(exc.tries, self._max_handbacks)
            if job.handbacks >= bound:
                return Failed(f"the engine stayed busy ({exc}); the request was handed back "
                              f"to the queue {job.handbacks} times and is given up",
                              ErrorType.ENGINE)
            return Busy(str(exc), max(exc.retry_after, 0.0))
        except RequestRejected as exc:
            return Failed(str(exc), ErrorType.INVALID)
        except TimeoutError:
            return Failed(
                f"the request ran past model {spec.slug!r}'s execution timeout of "
                f"{spec.config.execution_timeout:g} s", ErrorType.TIMEOUT)
        except Exception as exc:
            log.exception("engine failure on job %s", job.id)
            return Failed(f"the engine failed: {exc}", ErrorType.ENGINE)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _generate(self, job_id: str, spec: ModelSpec, request: GenerationRequest,
                        model_name: str, progress: _Progress, attempt: str) -> Completed:
        pieces: list[str] = []
        calls: list[ToolCall] = []
        finished: Finished | None = None
        policy = self._policy if self._policy and self._policy.checks("output") else None
        async with (asyncio.timeout(spec.config.execution_timeout),
                    contextlib.aclosing(spec.engine.generate(request)) as events):
            async for event in events:  # leaving early closes the generation at once
                if isinstance(event, TextDelta):
                    progress.delta(event)
                    if not event.text:  # usage only (the text went into a tool call)
                        continue
                    pieces.append(event.text)
                    if policy is not None:
                        blocked = policy.violation("output", ["".join(pieces)])
                        if blocked is not None:
                            raise PolicyBlocked(blocked)
                    await self._bus.publish(job_id, attempt, event.text)
                elif isinstance(event, ToolCall):
                    progress.first_token = progress.first_token or time.time()
                    calls.append(event)
                    if policy is not None:
                        blocked = policy.violation("output",
                                                   [json.dumps(event.input, ensure_ascii=False)])
                        if blocked is not None:
                            raise PolicyBlocked(blocked)
                else:
                    finished = event
        if finished is None:
            raise RuntimeError("the engine stopped without finishing the message")
        progress.input_tokens = finished.input_tokens
        progress.output_tokens = finished.output_tokens
        progress.cached_input = finished.cached_input_tokens
        return Completed(
            result=message_body(job_id, "".join(pieces), finished, model_name, calls),
            metrics=progress.metrics(),
        )

    async def _watch(self, claim: Claim, generation: asyncio.Task[Completed]) -> None:
        """Renew the lease; stop the generation the moment the job is no longer ours."""
        job_id = claim.job.id
        while not generation.done():
            record = await self._store.wait_for_change(job_id, Status.PROCESSING,
                                                       self._heartbeat)
            if generation.done():
                return
            if (record is None or record.status is not Status.PROCESSING
                    or not await self._store.heartbeat(claim)):
                generation.cancel()
                return
