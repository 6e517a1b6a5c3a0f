"""Postgres restarts and outages: runs resume instead of failing, and service returns in ~1 s.

A cluster of the test's own (so it can be restarted) serves one API process and two
workers. Runs of a 10-step graph that touches no database itself (everything it writes
goes through Trellis' checkpointer) are streamed while Postgres restarts (`pg_ctl restart
-m fast`: every backend terminated); each run must end `success`, and no stream may carry
an `error` event. After an outage, queued runs are claimed within 2 s of Postgres' return,
and while it is down the API answers 503 with `Retry-After` on a connection that stays
open.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.faults.harness import SSE, Cluster, PrivatePostgres, RedisServer, cluster, sse_events

TICKS = [f"t{i}" for i in range(1, 11)]
RUNS = 20
DELAY = 0.25
"""Ten steps of 0.25 s: a run takes ~2.5 s, so the restart lands mid-run."""


@pytest.fixture(scope="module")
def pg_trellis(request: pytest.FixtureRequest) -> Iterator[tuple[Cluster, PrivatePostgres]]:
    base = Path(tempfile.mkdtemp(prefix="trellis-pg-faults-"))
    base.chmod(0o755)  # the cluster's user (not root) must reach its directory below
    logs = base / "logs"
    logs.mkdir()
    pg = PrivatePostgres(base / "pg")
    (base / "pg").mkdir()
    redis = RedisServer(logs)
    try:
        pg.init()
        db = pg.create_database("trellis")
        redis.start()
        with cluster(logs, workers=2, env={"REDIS_URL": redis.url}, database=db) as c:
            yield c, pg
    finally:
        redis.kill()
        pg.close()
        if request.session.testsfailed:
            print(f"\npostgres fault test logs kept in {logs}")
        else:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def trellis(pg_trellis: tuple[Cluster, PrivatePostgres]) -> Cluster:
    """The cluster, under the name whose logs conftest prints when a test fails."""
    return pg_trellis[0]


def _run_rows(c: Cluster, thread_ids: list[str]) -> list[tuple[str, str, int]]:
    return [
        (str(run_id), status, attempt)
        for run_id, status, attempt in c.sql(
            "SELECT run_id, status, attempt FROM runs WHERE thread_id::text = ANY(%s)",
            (thread_ids,),
        )
    ]


async def _stream_run(http: httpx.AsyncClient, thread_id: str) -> list[SSE]:
    """Create a run and follow its stream to the end (or until the server cuts it)."""
    body = {"assistant_id": "ticks", "input": {"delay": DELAY}, "stream_mode": ["updates"]}
    events: list[SSE] = []
    try:
        async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as r:
            assert r.status_code == 200, await r.aread()
            async for event in sse_events(r):
                events.append(event)
    except httpx.HTTPError as exc:  # a cut stream: recorded, judged by the caller
        events.append(SSE(event="__cut__", data=repr(exc), id=None))
    return events


async def test_runs_in_flight_survive_a_fast_restart(
    pg_trellis: tuple[Cluster, PrivatePostgres], trellis: Cluster
) -> None:
    c, pg = pg_trellis
    async with httpx.AsyncClient(base_url=c.url, timeout=httpx.Timeout(60.0)) as http:
        threads = [str((await http.post("/threads", json={})).json()["thread_id"])]
        for _ in range(RUNS - 1):
            threads.append(str((await http.post("/threads", json={})).json()["thread_id"]))
        streams = [asyncio.create_task(_stream_run(http, t)) for t in threads]
        # Restart once every run has written a few checkpoints (bounded wait).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = c.sql(
                "SELECT count(DISTINCT thread_id) FROM checkpoints "
                "WHERE thread_id = ANY(%s) AND (metadata->>'step')::int >= 2",
                (threads,),
            )
            if rows[0][0] >= RUNS // 2:
                break
            await asyncio.sleep(0.05)
        began = time.time()
        up = await asyncio.to_thread(pg.restart, "fast")
        results = await asyncio.wait_for(asyncio.gather(*streams), 50)
        finished = time.time()

    rows = _run_rows(c, threads)
    statuses = [status for _, status, _ in rows]
    attempts = sorted(attempt for _, _, attempt in rows)
    errors = [e for events in results for e in events if e["event"] == "error"]
    cut = [events for events in results if events and events[-1]["event"] == "__cut__"]
    print(
        f"\npg restart -m fast took {up - began:.2f}s; {statuses.count('success')}/{RUNS} runs "
        f"succeeded, attempts {attempts}; {len(errors)} error events; {len(cut)} streams cut; "
        f"all streams done {finished - up:.1f}s after Postgres was back"
    )
    assert len(rows) == RUNS
    assert statuses == ["success"] * RUNS, rows
    assert errors == [], errors[:3]
    for thread_id in threads:
        state = c.sql(
            "SELECT status, values->'log' FROM threads WHERE thread_id::text = %s", (thread_id,)
        )
        assert state == [("idle", TICKS)], (thread_id, state)
    # Some runs really were interrupted and resumed (else the test proved nothing).
    assert max(attempts) >= 2, attempts


async def test_claims_resume_within_two_seconds_of_postgres_returning(
    pg_trellis: tuple[Cluster, PrivatePostgres], trellis: Cluster
) -> None:
    c, pg = pg_trellis
    async with httpx.AsyncClient(base_url=c.url, timeout=httpx.Timeout(30.0)) as http:
        threads = [
            str((await http.post("/threads", json={})).json()["thread_id"]) for _ in range(4)
        ]
        for thread_id in threads:
            created = await http.post(
                f"/threads/{thread_id}/runs",
                json={"assistant_id": "ticks", "input": {"delay": 0.01}, "after_seconds": 1},
            )
            assert created.status_code == 200, created.text
        # Down before the runs are due, up after: every worker connection is dead by then,
        # and the pools have been refused for a while (their reconnect backoff grows).
        await asyncio.to_thread(pg.stop, "fast")
        await asyncio.sleep(3.0)
        up = await asyncio.to_thread(pg.start)
        deadline = time.monotonic() + 20
        started: list[float] = []
        while time.monotonic() < deadline:
            rows = c.sql(
                "SELECT extract(epoch FROM started_at)::float8 FROM runs "
                "WHERE thread_id::text = ANY(%s) AND started_at IS NOT NULL",
                (threads,),
            )
            started = [row[0] for row in rows]
            if len(started) == len(threads):
                break
            await asyncio.sleep(0.05)
        resumed = [t - up for t in started]
        print(f"\nclaims after Postgres returned: {', '.join(f'{r:.2f}s' for r in resumed)}")
        assert len(started) == len(threads)
        assert max(resumed) <= 2.0, resumed
        for thread_id in threads:
            joined = await http.get(f"/threads/{thread_id}/runs")
            (run,) = joined.json()
            out = await http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
            assert out.json()["log"] == TICKS


def _post_thread(conn: http.client.HTTPConnection) -> tuple[int, dict[str, str], Any]:
    conn.request("POST", "/threads", body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_the_api_answers_503_while_postgres_is_down_then_200(
    pg_trellis: tuple[Cluster, PrivatePostgres], trellis: Cluster
) -> None:
    c, pg = pg_trellis
    where = urlsplit(c.url)
    assert where.hostname is not None
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        assert _post_thread(conn)[0] == 200
        assert conn.sock is not None
        local = conn.sock.getsockname()  # the keep-alive connection every request reuses
        pg.stop("fast")
        try:
            answers = []
            for _ in range(3):
                began = time.monotonic()
                answers.append((*_post_thread(conn), time.monotonic() - began))
                assert conn.sock is not None, "the server closed the connection"
                assert conn.sock.getsockname() == local
        finally:
            up = pg.start()
        for status, headers, body, took in answers:
            assert status == 503, (status, body)
            assert headers["retry-after"] == "1"
            assert headers["content-type"] == "application/json"
            assert body == {
                "detail": "the database is unavailable; retry shortly",
                "code": "database_unavailable",
            }
            assert took < 5.0, took
        recovered = None
        while time.time() - up < 10:
            status, _, body = _post_thread(conn)
            assert conn.sock is not None
            assert conn.sock.getsockname() == local
            if status == 200:
                recovered = time.time() - up
                break
            assert status == 503, body
            time.sleep(0.1)
        print(
            f"\n503 answers took {', '.join(f'{a[3]:.2f}s' for a in answers)}; "
            f"200 again {recovered}s after Postgres returned, on the same connection"
        )
        assert recovered is not None
        assert recovered <= 2.0
    finally:
        conn.close()
