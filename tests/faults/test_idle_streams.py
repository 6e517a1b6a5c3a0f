"""1,000 idle streams cost Postgres (almost) nothing: the run's end arrives as a notification.

On the cluster with a Postgres of its own (`pg_trellis`), so only Trellis' own traffic is
counted: a run sleeps in its first step while 1,000 clients, half on each API process,
follow its stream. Heartbeats come every 2 s there (`SSE_HEARTBEAT_SECONDS`): a stream
that asked Postgres whether its run was over at each one would add 500 transactions/s.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.faults.checks import wait_until
from tests.faults.harness import Cluster, PrivatePostgres, sse_events

STREAMS = 1_000
HEARTBEAT = 2.0
"""`SSE_HEARTBEAT_SECONDS` in the cluster (conftest's PG_ENV)."""
WINDOW = 6.0
SETTLE = 10.5
"""Postgres 16 backends report their statistics at most once a second, and an idle one only
10 s later (`PGSTAT_IDLE_INTERVAL`): a window opened sooner would count what came before."""


@pytest.fixture
def trellis(pg_trellis: tuple[Cluster, PrivatePostgres]) -> Cluster:
    """The cluster, under the name whose logs conftest prints when a test fails."""
    return pg_trellis[0]


def xact_commit(c: Cluster) -> int:
    """Transactions committed in the cluster's Trellis database so far."""
    rows = c.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    return int(rows[0][0])


def run_lookups(c: Cluster) -> int:
    """Scans of the runs table so far (each run status query is one)."""
    row = c.sql(
        "SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_user_tables "
        "WHERE relname = 'runs'"
    )
    return int(row[0][0])


async def _rates(c: Cluster) -> tuple[float, int]:
    """Transactions/s over WINDOW seconds from SETTLE seconds on, and the runs-table scans in
    it."""
    await asyncio.sleep(SETTLE)
    before, lookups = xact_commit(c), run_lookups(c)
    await asyncio.sleep(WINDOW)
    return (xact_commit(c) - before) / WINDOW, run_lookups(c) - lookups


async def test_idle_streams_ask_postgres_nothing(trellis: Cluster) -> None:
    c = trellis
    clients = [
        httpx.AsyncClient(
            base_url=url,
            timeout=httpx.Timeout(120.0),
            limits=httpx.Limits(max_connections=STREAMS // len(c.urls) + 10),
        )
        for url in c.urls
    ]
    try:
        thread_id = str((await clients[0].post("/threads", json={})).json()["thread_id"])
        run = await clients[0].post(
            f"/threads/{thread_id}/runs", json={"assistant_id": "ticks", "input": {"delay": 120}}
        )
        run_id = str(run.json()["run_id"])
        await wait_until(
            lambda: c.sql(
                "SELECT 1 FROM runs WHERE run_id::text = %s AND status = 'running'", (run_id,)
            ),
            within=30,
            what="the run to start",
        )
        base_rate, base_lookups = await _rates(c)

        opened = 0
        stop, all_open = asyncio.Event(), asyncio.Event()

        async def follow(http: httpx.AsyncClient) -> None:
            nonlocal opened
            path = f"/threads/{thread_id}/runs/{run_id}/stream"
            async with http.stream("GET", path) as response:
                assert response.status_code == 200
                async for _ in sse_events(response):
                    opened += 1
                    if opened == STREAMS:
                        all_open.set()
                    break
                await stop.wait()

        began = time.monotonic()
        tasks = [asyncio.create_task(follow(clients[i % len(clients)])) for i in range(STREAMS)]
        try:
            await asyncio.wait_for(all_open.wait(), 90)
            took = time.monotonic() - began
            # Past the first heartbeat (each stream asks Postgres once whether the run is
            # over), then a window of several more.
            await asyncio.sleep(HEARTBEAT)
            streams_rate, lookups = await _rates(c)
            assert all(not task.done() for task in tasks), "a stream ended early"
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = await clients[0].post(f"/threads/{thread_id}/runs/{run_id}/cancel")
        assert cancelled.status_code in (200, 202, 204), cancelled.text
    finally:
        for client in clients:
            await client.aclose()
    extra = streams_rate - base_rate
    print(
        f"\n{STREAMS} idle streams (opened in {took:.1f}s, heartbeat {HEARTBEAT:g}s): Postgres "
        f"{base_rate:.1f} -> {streams_rate:.1f} transactions/s ({extra:+.1f}); runs table scans "
        f"in {WINDOW:g}s: {base_lookups} -> {lookups}"
    )
    assert extra <= 5.0
