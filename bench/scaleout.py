"""Scale-out benchmark: the embedded server (SQLite) against PostgreSQL + Redis with one and
two API nodes, on the echo engine, in one run.

    .venv/bin/python bench/scaleout.py                       # 600 requests, 32 clients
    .venv/bin/python bench/scaleout.py --requests 1000 --concurrency 64

Each request is a sync ``POST /v1/echo`` (admission, queue, claim, run, completion,
settlement, the wake-up of the waiting request): what the platform costs per job, with the
model beside the point. Closed-loop clients spread over the API nodes; one worker process
runs the jobs in the PostgreSQL set-ups. PostgreSQL and Redis are private servers started
from the pip-installed binaries the tests use. Prints jobs/s and latency p50/p99 side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._server import ServerProcess
from tests._services import PostgresServer, RedisServer

CONFIG = """
[server]
lease_seconds = 10
sync_timeout = 60

[database]
pool_size = 4

[[models]]
slug = "echo"
batch_slots = 64
"""


async def load(urls: list[str], key: str, requests: int, concurrency: int,
               ) -> tuple[float, list[float]]:
    """Closed loop: ``concurrency`` clients, each sending its next request when its last is
    answered, the clients spread over the nodes. Returns the run's seconds and each
    latency."""
    latencies: list[float] = []
    left = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency * 2)

    async def client(n: int, http: httpx.AsyncClient) -> None:
        url = urls[n % len(urls)]  # a client keeps its connection to one node
        for i in left:
            started = time.perf_counter()
            response = await http.post(f"{url}/v1/echo", json={
                "messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 8})
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text}")
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(timeout=120, limits=limits,
                                 headers={"x-api-key": key}) as http:
        warm = await http.post(f"{urls[0]}/v1/echo", json={
            "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 2})
        warm.raise_for_status()
        started = time.perf_counter()
        await asyncio.gather(*(client(n, http) for n in range(concurrency)))
        return time.perf_counter() - started, latencies


def run(name: str, root: Path, env: dict[str, str], api_nodes: int, args: argparse.Namespace,
        ) -> dict[str, float | str]:
    procs: list[ServerProcess] = []
    try:
        if not env:
            procs.append(ServerProcess(root / name, CONFIG).start())
            urls = [procs[0].url]
        else:
            for n in range(api_nodes):
                procs.append(ServerProcess(root / f"{name}-api{n}", CONFIG, env=env,
                                           command="api").start())
            procs.append(ServerProcess(root / f"{name}-worker", CONFIG, env=env,
                                       command="worker").start())
            urls = [proc.url for proc in procs[:api_nodes]]
        duration, latencies = asyncio.run(load(urls, procs[0].key, args.requests,
                                               args.concurrency))
    finally:
        for proc in procs:
            proc.kill()
    latencies.sort()
    return {"setup": name, "jobs/s": len(latencies) / duration,
            "p50 ms": statistics.median(latencies) * 1000,
            "p99 ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="stratus-scaleout-"))
    postgres = PostgresServer().start()
    redis = RedisServer(root / "redis").start()
    rows = []
    try:
        rows.append(run("embedded (SQLite)", root, {}, 1, args))
        for nodes in (1, 2):
            schema = postgres.new_schema()
            env = {"STRATUS_DATABASE_URL": postgres.url(schema=schema),
                   "STRATUS_REDIS_URL": redis.url}
            redis.flush()
            rows.append(run(f"PostgreSQL+Redis, {nodes} API node{'s' * (nodes > 1)}", root,
                            env, nodes, args))
    finally:
        redis.stop()
        postgres.close()
    base = float(rows[0]["jobs/s"])
    print(f"\n{args.requests} requests, {args.concurrency} clients, echo engine\n")
    print(f"{'setup':34} {'jobs/s':>8} {'vs embedded':>12} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(f"{row['setup']:34} {row['jobs/s']:8.1f} {float(row['jobs/s']) / base:11.2f}x "
              f"{row['p50 ms']:8.1f} {row['p99 ms']:8.1f}")


if __name__ == "__main__":
    main()
