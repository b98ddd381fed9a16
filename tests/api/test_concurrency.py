"""Many clients at once: every job completes exactly once, with its own answer."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx
import pytest

from tests._server import ServerProcess

N = 200


@pytest.mark.anyio
async def test_200_concurrent_submits_complete_exactly_once(server: ServerProcess) -> None:
    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": server.key},
                                 timeout=60, limits=limits) as api:

        async def one(i: int) -> tuple[str, str]:
            response = await api.post("/v2/echo", json={
                "messages": [{"role": "user", "content": f"request number {i}"}]})
            assert response.status_code == 200, response.text
            rid = response.json()["request_id"]
            status = (await api.get(f"/v2/requests/{rid}/status")).json()
            while status["status"] not in ("COMPLETED", "FAILED"):
                status = (await api.get(f"/v2/requests/{rid}/status",
                                        params={"wait": 30})).json()
            assert status["status"] == "COMPLETED", status
            result = (await api.get(f"/v2/requests/{rid}")).json()
            return rid, json.loads(result["output"])["content"][0]["text"]

        results = await asyncio.gather(*(one(i) for i in range(N)))

    ids = [rid for rid, _ in results]
    assert len(set(ids)) == N
    assert [text for _, text in results] == [f"request number {i}" for i in range(N)]
    with sqlite3.connect(server.data_dir / "stratus.db") as db:
        marks = ",".join("?" * N)
        rows = db.execute(f"SELECT status, attempts FROM jobs WHERE id IN ({marks})",
                          ids).fetchall()
    assert len(rows) == N
    assert all(row == ("COMPLETED", 1) for row in rows)
