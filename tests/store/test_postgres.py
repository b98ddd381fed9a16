"""What only the PostgreSQL job store has to get right: many processes on one database.

Each "process" here is its own connection pool on the same schema, as two nodes would be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from stratus._postgres import SWEEP_LOCK, Postgres, migrations
from stratus.store import Metrics, NewJob, Status
from stratus.store.postgres import PostgresJobStore
from tests._server import free_port
from tests.conftest import answer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pools(postgres_url: str) -> AsyncIterator[Callable[[], Postgres]]:
    """Pools on one fresh schema, as many as a test asks for; all closed at the end."""
    opened: list[Postgres] = []

    def pool() -> Postgres:
        pg = Postgres(postgres_url, max_size=4)
        opened.append(pg)
        return pg

    yield pool
    for pg in opened:
        await pg.close()


def job(i: int, model: str = "m") -> NewJob:
    return NewJob(id=f"j{i}", account_id="a", model=model, requested_model=model,
                  request={"n": i})


async def test_migrations_apply_once_when_nodes_start_together(pools, postgres_url) -> None:
    nodes = [pools() for _ in range(4)]
    await asyncio.gather(*(pg.open() for pg in nodes))
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT number, name FROM stratus_migrations ORDER BY number")
        assert [(n, name) for n, name in rows] == [(n, name) for n, name, _ in migrations()]
    assert await nodes[0].migrate() == []  # nothing left to apply


async def test_concurrent_claims_never_take_one_job_twice(pools) -> None:
    nodes = [pools() for _ in range(3)]
    for pg in nodes:
        await pg.open()
    stores = [PostgresJobStore(pg) for pg in nodes]
    for i in range(30):
        await stores[0].submit(job(i))

    async def drain(store: PostgresJobStore, worker: str) -> list[str]:
        taken = []
        while (claim := await store.claim(["m"], worker)) is not None:
            taken.append(claim.job.id)
        return taken

    results = await asyncio.gather(*(drain(store, f"w{n}") for n, store in
                                     enumerate(stores * 2)))
    claimed = [job_id for taken in results for job_id in taken]
    assert sorted(claimed) == sorted(f"j{i}" for i in range(30))  # each exactly once


async def test_a_stale_workers_completion_changes_nothing(pools) -> None:
    pg = pools()
    await pg.open()
    settled: list[str] = []

    async def settle(conn, record) -> bool:
        settled.append(record.id)
        return False

    store = PostgresJobStore(pg, lease_seconds=0.05, settle=settle)
    await store.submit(job(1))
    stale = await store.claim(["m"], "a")
    await asyncio.sleep(0.1)
    assert (await store.sweep()).requeued == ("j1",)
    fresh = await store.claim(["m"], "b")
    assert fresh.job.attempts == 2 and fresh.token != stale.token
    assert await store.complete(stale, answer("stale"), Metrics(cost=9)) is None
    assert await store.fail(stale, "stale", "engine_error") is None
    assert not await store.heartbeat(stale)
    assert settled == []
    ended = await store.complete(fresh, answer("fresh"), Metrics(cost=1))
    assert ended.status is Status.COMPLETED and ended.result == answer("fresh")
    assert settled == ["j1"]  # settled once, in the completing transaction


async def test_a_settlement_that_fails_leaves_the_job_running(pools) -> None:
    pg = pools()
    await pg.open()

    async def settle(conn, record) -> bool:
        raise RuntimeError("settlement failed")

    store = PostgresJobStore(pg, settle=settle)
    await store.submit(job(1))
    claim = await store.claim(["m"], "w")
    with pytest.raises(RuntimeError):
        await store.complete(claim, answer("x"), Metrics(cost=1))
    record = await store.get("j1")
    assert record.status is Status.PROCESSING and record.result is None


async def test_one_sweep_at_a_time(pools, postgres_url) -> None:
    pg = pools()
    await pg.open()
    store = PostgresJobStore(pg, lease_seconds=0.01)
    await store.submit(job(1))
    await store.claim(["m"], "w")
    await asyncio.sleep(0.05)
    async with pg.transaction() as conn:  # another node is sweeping
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SWEEP_LOCK,))
        other = PostgresJobStore(pools())
        await other._pg.open()
        assert (await other.sweep()).requeued == ()  # skipped, not blocked
    assert (await store.sweep()).requeued == ("j1",)


async def test_heartbeat_renews_every_lease_of_the_worker(pools) -> None:
    pg = pools()
    await pg.open()
    store = PostgresJobStore(pg, lease_seconds=0.3)
    for i in range(2):
        await store.submit(job(i))
    first = await store.claim(["m"], "w")
    await store.claim(["m"], "w")
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await store.heartbeat(first)
    assert (await store.sweep()).requeued == ()  # the second lease was renewed too
    async with pg.transaction() as conn:
        cur = await conn.execute("SELECT id, models FROM workers")
        assert [(row["id"], row["models"]) for row in await cur.fetchall()] == [("w", ["m"])]


async def test_a_database_that_is_down_is_a_quick_503() -> None:
    from stratus.errors import Unavailable

    dead = Postgres(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_timeout=1)
    with pytest.raises(Unavailable) as raised:
        await dead.open()
    assert raised.value.status_code == 503 and "Retry-After" in raised.value.headers


async def test_workers_report_their_engines_to_processes_without_any(pools) -> None:
    pg = pools()
    await pg.open()
    store = PostgresJobStore(pg, lease_seconds=0.3)
    cooling = {"state": "cooldown", "reason": "the upstream cannot be reached",
               "next_probe_at": 123.0}
    ready = {"state": "ready", "reason": None, "next_probe_at": None}
    await store.report_health("w1", {"m": cooling, "n": ready})
    await store.report_health("w2", {"m": ready})
    health = await store.model_health()
    assert sorted(health["m"], key=lambda s: s["state"]) == [cooling, ready]
    assert health["n"] == [ready]
    await store.report_health("w1", {"m": ready, "n": ready})  # a report replaces the last
    assert (await store.model_health())["m"] == [ready, ready]
    await asyncio.sleep(0.4)  # a worker not heard from for a lease is not asked
    assert await store.model_health() == {}
