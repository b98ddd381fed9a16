"""The worker: claims jobs for the models it serves, runs them on their engines, records
the outcome.

Each claimed job runs as its own task beside a watcher that renews the lease and notices a
cancel (or a lost lease) at once, through the store's change notification. Per model, at most
as many jobs run at a time as its engine's capacity (the model's ``batch_slots``, an
upstream's ``max_concurrency``, none while an upstream cools down), all handed to the engine
together so it can batch them.

Models loaded on demand are loaded and unloaded as :mod:`stratus.worker._residency` decides:
the worker looks at the queue of the unloaded ones, carries out its plan (loads and unloads
run as tasks beside the loop) and claims only for loaded models. With ``max_idle``, a worker
that has run and loaded nothing for that long stops (``idle_exit``): it holds no job then.
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
from stratus.errors import describe
from stratus.models import ModelRegistry, ModelSpec
from stratus.outcomes import Outcomes
from stratus.policy import ContentPolicy
from stratus.store import Claim, ErrorType, JobRecord, JobStore, Metrics, Status
from stratus.streams import LocalTokenStream, TokenStream
from stratus.telemetry import Telemetry
from stratus.worker._events import Busy, Completed, Failed, Lost, Outcome, Released
from stratus.worker._residency import Plan, Residency, Resident
from stratus.worker._result import message_body, metrics

log = logging.getLogger("stratus.worker")

MAX_HANDBACKS = 20  # a job a busy engine handed back this often fails


COOLDOWN_LOOK = 1.0  # seconds between looks at an engine that takes nothing, at most
QUEUE_LOOK = 0.25  # seconds between looks at the queue of unloaded models while busy


def on_demand(spec: ModelSpec) -> bool:
    """Loaded when its jobs come, not at start (a remote engine holds no model here)."""
    return spec.config.load == "on_demand" and not spec.remote


def _until_probe(spec: ModelSpec) -> float:
    """Seconds until an engine that takes nothing now may take work again."""
    until = spec.engine.health().until
    return COOLDOWN_LOOK if until is None else min(max(until - time.time(), 0.01), COOLDOWN_LOOK)


class PolicyBlocked(Exception):
    """The output matched the content policy: the generation stops there."""


class _Progress:
    """How far a generation got: its metrics when it ends, or when it is stopped."""

    def __init__(self, spec: ModelSpec, queued_for: float,
                 cold_start_ms: float | None = None) -> None:
        self.config = spec.config
        self.queued_for = queued_for
        self.cold_start_ms = cold_start_ms
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
                       self.cached_input, self.cold_start_ms)


class Worker:
    def __init__(self, store: JobStore, models: ModelRegistry, *, lease_seconds: float,
                 sweep_interval: float, worker_id: str | None = None,
                 bus: TokenStream | None = None, outcomes: Outcomes | None = None,
                 policy: ContentPolicy | None = None,
                 max_handbacks: int = MAX_HANDBACKS,
                 telemetry: Telemetry | None = None, memory_budget: int | None = None,
                 load_retry: float = 30.0, max_idle: float | None = None) -> None:
        """``max_handbacks``: how many times a job may be handed back by a busy engine before
        it fails. ``memory_budget`` (bytes): what the loaded models may hold together;
        ``load_retry``: seconds before a failed load is tried again; ``max_idle``: seconds
        with nothing run or loaded after which the worker stops."""
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
        self._residency = Residency.of(
            [Resident(spec.slug, on_demand=on_demand(spec), size=0,
                      idle_unload=spec.config.idle_unload,
                      state="unloaded" if on_demand(spec) else "loaded") for spec in models],
            budget=memory_budget, load_retry=load_retry)
        self._changing: set[asyncio.Task[None]] = set()  # loads and unloads under way
        self._queued: set[str] = set()  # unloaded models with jobs waiting, as last looked
        self._looked: set[str] = set()  # the models that look was at
        self._next_look = 0.0
        self._since: dict[str, float] = {}  # wall clock: when a model's load began or failed
        self._max_idle = max_idle
        self._last_active = time.monotonic()
        self.idle_exit = asyncio.Event()  # set when max_idle has passed with nothing to do

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

    @property
    def residency(self) -> Residency:
        return self._residency

    def start(self) -> None:
        """Once the models are started (on-demand ones with their tokenizers only)."""
        for spec in self._models:
            self._residency.residents[spec.slug].size = spec.engine.memory_bytes()
            if self._telemetry is not None:
                self._telemetry.model_loaded.labels(spec.slug).set(
                    int(self._residency.claimable(spec.slug)))
        self._last_active = time.monotonic()
        self._loop_task = asyncio.create_task(self._loop(), name=f"{self.id}-loop")

    def model_state(self, spec: ModelSpec) -> dict[str, Any]:
        """The model's state here: its engine's (ready, or an upstream's cooldown), or where
        its load stands (unloaded, loading, a failed load's cooldown)."""
        state = spec.state()
        resident = self._residency.residents.get(spec.slug)
        if state["state"] != "ready" or resident is None:
            return state
        if resident.state in ("unloaded", "unloading"):
            return {"state": "unloaded", "reason": None, "next_probe_at": None}
        since = self._since.get(spec.slug, 0.0)
        if resident.state == "loading":
            took = resident.load_seconds
            return {"state": "loading", "reason": None, "next_probe_at": None,
                    "estimated_ready_at": None if took is None else round(since + took, 3)}
        if resident.state == "failed":
            return {"state": "cooldown", "reason": f"the model failed to load: {resident.error}",
                    "next_probe_at": round(since + self._residency.load_retry, 3)}
        return state

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
        deadline = time.monotonic() + grace
        if self._changing:  # a load under way ends before its engine may be closed
            await asyncio.wait(self._changing)
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(
                tasks, timeout=max(deadline - time.monotonic(), 0.0))
            if pending:
                self._releasing = True
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    # -- claiming --------------------------------------------------------------------------

    async def _report(self) -> None:
        """Tell processes without engines (API nodes) what this worker's engines say."""
        health = {spec.slug: self.model_state(spec) for spec in self._models}
        now = time.monotonic()
        if health != self._reported or now >= self._next_report:
            await self._store.report_health(self.id, health)
            self._reported, self._next_report = health, now + self._heartbeat

    async def _loop(self) -> None:
        next_sweep = 0.0
        while not self._draining:
            try:
                self._slot_freed.clear()  # what sets it from here on wakes the wait below
                await self._report()
                now = time.monotonic()
                if now >= next_sweep:
                    report = await self._store.sweep()
                    if self._outcomes is not None:
                        await self._outcomes.after_sweep(report)
                    await self._count_swept(report.failed)
                    next_sweep = now + self._sweep_interval
                wait = max(next_sweep - time.monotonic(), 0.0)
                plan = await self._keep_models()
                if plan.wake_in is not None:
                    wait = min(wait, plan.wake_in)
                now = time.monotonic()
                idle = self._idle_for(now)
                if self._max_idle is not None and idle >= 0:
                    wait = min(wait, max(self._max_idle - idle, 0.0))
                paused = [until for until in self._paused.values() if until > now]
                if paused:  # look again when the first busy engine may take work
                    wait = min(wait, min(paused) - now)
                free = []
                for spec in self._models:
                    if not self._residency.claimable(spec.slug) or spec.slug in plan.hold:
                        continue
                    capacity = spec.engine.capacity()
                    if capacity == 0:  # an upstream cooling down: look again at its probe
                        wait = min(wait, _until_probe(spec))
                    elif (self._inflight.get(spec.slug, 0) < capacity
                          and self._paused.get(spec.slug, 0.0) <= now):
                        free.append(spec.slug)
                if not free:
                    if self._idle_out(idle):
                        return
                    await self._wait(wait, work=bool(self._residency.unloaded_on_demand()))
                    continue
                claim = await self._store.claim(free, self.id)
                if claim is None:
                    self._residency.found_nothing(free)
                    if self._idle_out(idle):
                        return
                    self._next_look = 0.0  # nothing to claim: look at the unloaded ones too
                    await self._wait(wait, work=True)
                    continue
                self._launch(claim)
            except Exception:
                log.exception("worker loop error; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def _wait(self, timeout: float, *, work: bool) -> None:
        """Until a slot frees (or a model is loaded or unloaded), ``timeout`` passes or, with
        ``work``, a job may have been queued."""
        waits = [asyncio.ensure_future(self._slot_freed.wait())]
        if work:
            waits.append(asyncio.ensure_future(self._store.wait_for_work(timeout)))
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if work and len(waits) > 1 and waits[1] in done:
            self._next_look = 0.0  # a job came: is it for a model not loaded?

    def _idle_out(self, idle: float) -> bool:
        """Stop, with ``max_idle``, once it has passed with nothing run or loaded and nothing
        waits for a model of this worker (a claim has just found none)."""
        if self._max_idle is None or idle < self._max_idle or self._queued \
                or self._residency.failing():
            return False
        log.info("worker %s stops: nothing to do for %g s", self.id, idle)
        self.idle_exit.set()
        return True

    def _idle_for(self, now: float) -> float:
        """Seconds with nothing run, loaded or unloaded (-1: something is under way)."""
        if self._running or self._changing:
            return -1.0
        return now - self._last_active

    # -- models loaded on demand -----------------------------------------------------------

    async def _keep_models(self) -> Plan:
        """Look at the queue of the unloaded on-demand models (when idle, woken by a new
        job, or every ``QUEUE_LOOK`` s) and start the loads and unloads the plan says."""
        now = time.monotonic()
        self._residency.expire(now)
        unloaded = self._residency.unloaded_on_demand()
        if not unloaded:
            self._queued = set()
        elif now >= self._next_look or not set(unloaded) <= self._looked:
            self._queued = await self._store.waiting(unloaded)
            self._looked = set(unloaded)
            self._next_look = now + QUEUE_LOOK
        plan = self._residency.plan(self._queued, self._inflight, now)
        for slug in plan.unload:
            self._change(slug, load=False)
        for slug in plan.load:
            self._change(slug, load=True)
        return plan

    def _change(self, slug: str, *, load: bool) -> None:
        spec = self._models.resolve(slug)
        self._since[slug] = time.time()
        if load:
            self._residency.loading(slug, time.monotonic())
        else:
            self._residency.unloading(slug, time.monotonic())
        task = asyncio.create_task(self._load(spec) if load else self._unload(spec),
                                   name=f"{'load' if load else 'unload'}-{slug}")
        self._changing.add(task)
        task.add_done_callback(self._changing.discard)

    async def _load(self, spec: ModelSpec) -> None:
        slug = spec.slug
        try:
            await spec.engine.load()
        except Exception as exc:
            log.exception("model %s failed to load", slug)
            self._since[slug] = time.time()
            self._residency.failed(slug, describe(exc), time.monotonic())
            await self._fail_one(spec, describe(exc))
        else:
            self._residency.loaded(slug, time.monotonic())
            took = self._residency.residents[slug].load_seconds or 0.0
            log.info("model %s loaded on demand in %.2f s", slug, took)
            if self._telemetry is not None:
                self._telemetry.cold_starts.labels(slug).observe(took)
                self._telemetry.model_loaded.labels(slug).set(1)
        finally:
            self._last_active = time.monotonic()
            self._slot_freed.set()

    async def _unload(self, spec: ModelSpec) -> None:
        slug = spec.slug
        try:
            await spec.engine.unload()
        except Exception:  # its engine has stopped: loaded again when asked
            log.exception("model %s did not unload cleanly", slug)
        else:
            log.info("model %s unloaded", slug)
        finally:
            self._residency.unloaded(slug, time.monotonic())
            if self._telemetry is not None:
                self._telemetry.model_loaded.labels(slug).set(0)
            self._last_active = time.monotonic()
            self._slot_freed.set()

    async def _fail_one(self, spec: ModelSpec, error: str) -> None:
        """A model that cannot load fails the job that asked for it (the others wait)."""
        claim = await self._store.claim([spec.slug], self.id)
        if claim is None:
            return
        ended = await self._store.fail(
            claim, f"model {spec.slug!r} could not be loaded: {error}; it is tried again in "
                   f"{self._residency.load_retry:g} s", ErrorType.ENGINE)
        await self._count(claim, ended, None)
        if ended is not None and self._outcomes is not None:
            await self._outcomes.worker_ended(ended)

    def _launch(self, claim: Claim) -> None:
        job_id, slug = claim.job.id, claim.job.model
        self._inflight[slug] = self._inflight.get(slug, 0) + 1
        self._residency.used(slug, time.monotonic())
        cold = self._residency.take_cold_start(slug)
        task = asyncio.create_task(self._run(claim, cold), name=f"job-{job_id}")
        self._running[job_id] = task

        def done(_: asyncio.Task[Outcome]) -> None:
            self._running.pop(job_id, None)
            self._inflight[slug] -= 1
            self._last_active = time.monotonic()
            self._residency.used(slug, self._last_active)
            self._slot_freed.set()

        task.add_done_callback(done)

    # -- running one job -------------------------------------------------------------------

    async def _run(self, claim: Claim, cold_start_ms: float | None = None) -> Outcome:
        job_id, attempt = claim.job.id, claim.token
        await self._bus.start(job_id, attempt)
        try:
            if self._outcomes is not None:
                await self._outcomes.started(claim.job)
            outcome = await self._attempt(claim, cold_start_ms)
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

    async def _attempt(self, claim: Claim, cold_start_ms: float | None = None) -> Outcome:
        job = claim.job
        try:
            spec = self._models.resolve(job.model)
            request = GenerationRequest.model_validate(job.request)
        except Exception as exc:
            return Failed(f"this server cannot run the request: {exc}", ErrorType.ENGINE)
        queued_for = (job.started_at or job.created_at) - job.created_at
        progress = _Progress(spec, queued_for, cold_start_ms)
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
