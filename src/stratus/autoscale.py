"""``stratus autoscale``: local ``stratus worker`` processes that follow the queue.

Every ``interval`` seconds the supervisor reads how many jobs wait for the models its workers
serve (from the shared PostgreSQL, as ``/metrics`` reports them) and starts workers until
there are ``ceil(waiting / jobs_per_worker)`` of them, between ``min`` and ``max``. It never
stops one: a worker it started beyond ``min`` runs with ``--max-idle`` and exits by itself
once it has had nothing to do for that long (it holds no job then), so capacity goes back
to ``min``, zero included. On SIGTERM it stops its workers (each drains as on a deploy) and
exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stratus import backends
from stratus.config import Config

log = logging.getLogger("stratus.autoscale")
STOP_WAIT = 120.0  # seconds a stopped worker may take to drain before it is killed
BACKOFF_MAX = 60.0  # seconds, at most, between starts after workers that failed


@dataclass(frozen=True, slots=True)
class Limits:
    min: int = 0
    max: int = 4
    jobs_per_worker: int = 16  # waiting jobs that call for one more worker
    max_idle: float = 300.0  # seconds a worker beyond min may have nothing to do
    interval: float = 2.0  # seconds between looks at the queue


def target(waiting: Mapping[str, int], models: Sequence[str] | None, limits: Limits) -> int:
    """How many workers the queue calls for: one per ``jobs_per_worker`` waiting jobs of the
    served models (any job: at least one), within ``min`` and ``max``."""
    jobs = sum(n for model, n in waiting.items() if models is None or model in models)
    return max(limits.min, min(limits.max, math.ceil(jobs / limits.jobs_per_worker)))


class Supervisor:
    def __init__(self, config: Config, limits: Limits, *, config_path: str | None,
                 models: Sequence[str] | None, worker_args: Sequence[str] = ()) -> None:
        self._config = config
        self._limits = limits
        self._config_path = config_path
        self._models = list(models) if models else None
        self._worker_args = list(worker_args)
        # pid -> the process, and whether it is kept (one of min) or exits when idle
        self._workers: dict[int, tuple[asyncio.subprocess.Process, bool]] = {}
        self._stop = asyncio.Event()
        self._backoff = 0.0  # seconds to wait before the next start, after failures
        self._next_start = 0.0  # monotonic

    @property
    def workers(self) -> int:
        return len(self._workers)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        database = backends.database(self._config)
        await database.open()
        try:
            while not self._stop.is_set():
                await self._tick(database)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._limits.interval)
        finally:
            await self._stop_all()
            await database.close()

    async def _tick(self, database: backends.Database) -> None:
        self._reap()
        try:
            stats = await database.store.queue_stats()
        except Exception as exc:  # the database is away: keep what runs, look again
            log.warning("cannot read the queue: %s", exc)
            return
        waiting = {model: n for model, (n, _) in stats.items()}
        if time.monotonic() < self._next_start:
            return  # workers failed at start: wait before starting more
        kept = sum(1 for _, keep in self._workers.values() if keep)
        for _ in range(self._limits.min - kept):
            await self._start(keep=True)
        for _ in range(target(waiting, self._models, self._limits) - len(self._workers)):
            await self._start(keep=False)

    async def _start(self, *, keep: bool) -> None:
        args = [sys.executable, "-m", "stratus", "worker", "--port", "0"]
        if self._config_path:
            args += ["--config", self._config_path]
        if self._models:
            args += ["--models", ",".join(self._models)]
        if not keep:
            args += ["--max-idle", f"{self._limits.max_idle:g}"]
        proc = await asyncio.create_subprocess_exec(*args, *self._worker_args)
        self._workers[proc.pid] = (proc, keep)
        log.info("started worker pid %d (%s; %d running)", proc.pid,
                 "kept" if keep else f"exits after {self._limits.max_idle:g} s idle",
                 len(self._workers))

    def _reap(self) -> None:
        for pid, (proc, _) in list(self._workers.items()):
            if proc.returncode is not None:
                del self._workers[pid]
                log.info("worker pid %d exited with %d (%d running)", pid, proc.returncode,
                         len(self._workers))
                if proc.returncode == 0:
                    self._backoff = 0.0
                else:  # a worker that fails (at start, say) is not restarted in a tight loop
                    self._backoff = min(max(self._backoff * 2, self._limits.interval),
                                        BACKOFF_MAX)
                    self._next_start = time.monotonic() + self._backoff

    async def _stop_all(self) -> None:
        """SIGTERM to every worker (each drains); one still running after ``STOP_WAIT`` is
        killed (its jobs go back to the queue when their leases lapse)."""
        procs = [proc for proc, _ in self._workers.values() if proc.returncode is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        if procs:
            _, stuck = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs],
                                          timeout=STOP_WAIT)
            if stuck:
                for proc in procs:
                    if proc.returncode is None:
                        log.warning("worker pid %d did not stop: killed", proc.pid)
                        proc.kill()
                await asyncio.gather(*(p.wait() for p in procs))
        self._reap()
