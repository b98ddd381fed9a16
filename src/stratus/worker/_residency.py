"""Which models a worker holds loaded: the decisions only, made from plain facts (what waits
in the queue, what runs, the clock) and returned as a :class:`Plan` that the worker carries
out. Nothing here loads a model; it is tested without one.

- An ``eager`` model is loaded at start and stays (it is never unloaded).
- An ``on_demand`` model is loaded when jobs for it wait, one load at a time. Its jobs stay
  QUEUED meanwhile; the first one claimed after the load pays its cold start.
- It is unloaded once it has run nothing for ``idle_unload`` seconds (0: never).
- With a ``memory_budget``, a load waits until the models held fit beside it: the least
  recently used idle on-demand models are unloaded first (and the load starts only once
  they are out, so two never overlap), and while the models still running keep it from
  fitting, they take no new jobs (``hold``), so that they drain and the waiting model's
  turn comes. A model just loaded has its turn first: it is neither held nor unloaded
  until a claim finds none of its jobs waiting, or ``turn`` seconds have passed since it
  loaded (``fresh``), so a swap is paid for with a queue's worth of jobs, and a busy model
  cannot keep another out for ever. A model larger than the whole budget is loaded when it
  would be alone.
- A load that fails leaves the model ``failed`` for ``load_retry`` seconds (the worker fails
  one of its jobs with the error), then it may be tried again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

State = Literal["unloaded", "loading", "loaded", "unloading", "failed"]


@dataclass
class Resident:
    """One model as the worker holds it."""

    slug: str
    on_demand: bool
    size: int  # bytes it holds loaded
    idle_unload: float = 0.0  # seconds idle before it is unloaded (0: never)
    state: State = "unloaded"
    last_used: float = 0.0  # monotonic: when it last ran or was loaded
    since: float = 0.0  # monotonic: when its state last changed
    load_seconds: float | None = None  # how long its last load took
    cold_start_ms: float | None = None  # for the next job claimed after a load
    fresh: bool = False  # just loaded: its turn, until its queue is found empty
    error: str | None = None  # why its last load failed


@dataclass(frozen=True, slots=True)
class Plan:
    load: tuple[str, ...] = ()
    unload: tuple[str, ...] = ()
    hold: frozenset[str] = frozenset()  # loaded models that take no new job for now
    wake_in: float | None = None  # seconds until a decision may change with no event


@dataclass
class Residency:
    residents: dict[str, Resident]
    budget: int | None = None
    load_retry: float = 30.0
    turn: float = 30.0  # seconds a model just loaded may run its queue before it is held
    _waiting: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, residents: Collection[Resident], budget: int | None = None,
           load_retry: float = 30.0) -> Residency:
        return cls({r.slug: r for r in residents}, budget, load_retry)

    # -- facts -----------------------------------------------------------------------------

    def claimable(self, slug: str) -> bool:
        return self.residents[slug].state == "loaded"

    def expire(self, now: float) -> None:
        """Models whose failed load has waited ``load_retry`` may be loaded again."""
        for r in self.residents.values():
            if r.state == "failed" and now - r.since >= self.load_retry:
                self._set(r.slug, "unloaded", now)

    def failing(self) -> bool:
        return any(r.state == "failed" for r in self.residents.values())

    def unloaded_on_demand(self) -> list[str]:
        """On-demand models whose queue the worker must look at: not loaded, not failing."""
        return [r.slug for r in self.residents.values()
                if r.on_demand and r.state == "unloaded"]

    def held(self) -> int:
        return sum(r.size for r in self.residents.values()
                   if r.state in ("loaded", "loading", "unloading"))

    # -- changes the worker reports --------------------------------------------------------

    def loading(self, slug: str, now: float) -> None:
        self._set(slug, "loading", now)

    def loaded(self, slug: str, now: float) -> None:
        resident = self.residents[slug]
        took = now - resident.since
        resident.load_seconds, resident.cold_start_ms = took, took * 1000
        resident.error = None
        resident.last_used = now
        resident.fresh = True
        self._set(slug, "loaded", now)

    def failed(self, slug: str, error: str, now: float) -> None:
        self.residents[slug].error = error
        self._set(slug, "failed", now)

    def unloading(self, slug: str, now: float) -> None:
        self._set(slug, "unloading", now)

    def unloaded(self, slug: str, now: float) -> None:
        self._set(slug, "unloaded", now)

    def used(self, slug: str, now: float) -> None:
        self.residents[slug].last_used = now

    def found_nothing(self, slugs: Collection[str]) -> None:
        """A claim for these models found no job: none waits for a model just loaded."""
        for slug in slugs:
            self.residents[slug].fresh = False

    def take_cold_start(self, slug: str) -> float | None:
        """The cold start a job claimed now pays (once per load)."""
        resident = self.residents[slug]
        cold, resident.cold_start_ms = resident.cold_start_ms, None
        return cold

    def _set(self, slug: str, state: State, now: float) -> None:
        resident = self.residents[slug]
        resident.state, resident.since = state, now

    # -- the decision ----------------------------------------------------------------------

    def plan(self, queued: Collection[str], running: Mapping[str, int], now: float) -> Plan:
        """What to do now: ``queued``, the models with jobs waiting (of those this worker
        asked about); ``running``, jobs running here by model."""
        self.expire(now)
        wake = [r.since + self.load_retry - now for r in self.residents.values()
                if r.state == "failed"]  # when it may be tried again
        for r in self.residents.values():
            if r.fresh and now - r.since >= self.turn:
                r.fresh = False
        unload = [r.slug for r in self.residents.values() if self._idle_out(r, running, now)]
        for r in self.residents.values():
            if r.on_demand and r.state == "loaded" and r.idle_unload > 0 \
                    and r.slug not in unload:
                if running.get(r.slug, 0):
                    continue  # it wakes the worker when its jobs end
                wake.append(r.last_used + r.idle_unload - now)
        load: list[str] = []
        hold: set[str] = set()
        changing = any(r.state in ("loading", "unloading") for r in self.residents.values())
        wanted = self._in_turn(queued, now)
        if wanted and not changing and not unload:
            evict, blockers = self._room_for(self.residents[wanted[0]], running)
            if blockers:  # running ones drain (their ends wake the worker); fresh ones run
                hold = {s for s in blockers if not self.residents[s].fresh}
            elif evict:
                unload = evict  # the load follows once they are out
            else:
                load.append(wanted[0])
        return Plan(load=tuple(load), unload=tuple(unload), hold=frozenset(hold),
                    wake_in=max(min(wake), 0.0) if wake else None)

    def _in_turn(self, queued: Collection[str], now: float) -> list[str]:
        """The unloaded models with jobs waiting, the one that has waited longest first."""
        waiting = {slug for slug in queued
                   if slug in self.residents and self.residents[slug].state == "unloaded"}
        for slug in list(self._waiting):
            if slug not in waiting:
                del self._waiting[slug]
        for slug in waiting:
            self._waiting.setdefault(slug, now)
        return sorted(self._waiting, key=lambda slug: self._waiting[slug])

    @staticmethod
    def _idle_out(r: Resident, running: Mapping[str, int], now: float) -> bool:
        return (r.on_demand and r.state == "loaded" and r.idle_unload > 0 and not r.fresh
                and not running.get(r.slug, 0) and now - r.last_used >= r.idle_unload)

    def _room_for(self, wanted: Resident,
                  running: Mapping[str, int]) -> tuple[list[str], list[str]]:
        """The idle models to unload so that ``wanted`` fits the budget, or (if running or
        fresh models keep it from fitting) the models it waits for."""
        if self.budget is None:
            return [], []
        held = self.held()
        if held + wanted.size <= self.budget:
            return [], []
        loaded = sorted((r for r in self.residents.values()
                         if r.on_demand and r.state == "loaded"), key=lambda r: r.last_used)
        evict: list[str] = []
        for r in loaded:
            if held + wanted.size <= self.budget:
                break
            if not running.get(r.slug, 0) and not r.fresh:
                evict.append(r.slug)
                held -= r.size
        if held + wanted.size <= self.budget:
            return evict, []
        blockers = [r.slug for r in loaded if running.get(r.slug, 0) or r.fresh]
        if not blockers:
            return evict, []  # nothing more can make room: it is loaded over the budget
        return evict, blockers
