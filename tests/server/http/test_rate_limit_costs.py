"""Rate limits that count what a request does: each run of a batch, and the public paths."""

from __future__ import annotations

import httpx
import psycopg

from tests.support.security import security_settings, trellis


async def _runs_of(database_url: str, assistant_id: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) FROM runs r JOIN assistants a USING (assistant_id) "
                "WHERE a.assistant_id = %s",
                (assistant_id,),
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_each_run_of_a_batch_counts_against_the_runs_limit(security_db: str) -> None:
    settings = security_settings(security_db, rate_limit_runs="5/minute")
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        # An assistant of its own, so the runs this test made can be counted; delayed, so
        # they stay (a stateless run's thread goes once it ran).
        assistant = (await http.post("/assistants", json={"graph_id": "echo"})).json()
        run = {"assistant_id": assistant["assistant_id"], "input": {}, "after_seconds": 600}
        first = await http.post("/runs/batch", json=[run] * 3)
        assert first.status_code == 200
        assert len(first.json()) == 3
        second = await http.post("/runs/batch", json=[run] * 3)  # 3 + 3 > 5: none of it
        assert second.status_code == 429
        assert second.json()["code"] == "rate_limited"
        assert 1 <= int(second.headers["retry-after"]) <= 60
        assert await _runs_of(security_db, assistant["assistant_id"]) == 3
        # The refused batch used only the one request the middleware counts: 4 of 5.
        last = await http.post("/runs", json=run)
        assert last.status_code == 200
        assert (await http.post("/runs", json=run)).status_code == 429
        assert await _runs_of(security_db, assistant["assistant_id"]) == 4
        for created in [*first.json(), last.json()]:
            cancel = f"/threads/{created['thread_id']}/runs/{created['run_id']}/cancel"
            assert (await http.post(cancel)).status_code == 200


async def test_public_paths_are_limited_per_client_address(security_db: str) -> None:
    settings = security_settings(security_db, rate_limit_public="4/minute")
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        statuses = [
            (await http.get(path)).status_code
            for path in ("/ok?check_db=1", "/info", "/openapi.json", "/ok", "/ok", "/info")
        ]
        assert statuses == [200, 200, 200, 200, 429, 429]
        limited = await http.get("/docs")
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        assert "retry-after" in limited.headers
        # The API's own buckets are apart: reads are not used up by health checks.
        assert (await http.post("/threads/search", json={})).status_code == 200
