"""Resumable streams over raw HTTP: reconnect with `Last-Event-ID` at random points, rejoin a
finished run, stale cursors; and how fast `join` answers after a run ends.

The runs ask for `stream_resumable` (as with the official server, only those stay replayable
after they end). The cluster keeps at most ~100 events per run (`RUN_EVENT_MAX_LENGTH=100`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import run_row
from tests.faults.harness import Cluster, sse_events

MODES = ["values", "updates", "custom"]
CHATTY = {"events": 15, "pause": 0.03}  # 3 steps x 15 custom events: ~55 events in all


async def _create(client: LangGraphClient, payload: dict[str, Any]) -> tuple[str, str]:
    thread_id = str((await client.threads.create())["thread_id"])
    run = await client.runs.create(
        thread_id, "chatty", input=payload, stream_mode=MODES, stream_resumable=True
    )
    return thread_id, str(run["run_id"])


async def _read(
    http: httpx.AsyncClient, thread_id: str, run_id: str, last: str | None, stop_after: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """Events of one connection; `ended` when the server closed the stream itself."""
    headers = {"Last-Event-ID": last} if last is not None else {}
    got: list[dict[str, Any]] = []
    async with http.stream(
        "GET", f"/threads/{thread_id}/runs/{run_id}/stream", headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for event in sse_events(response):
            got.append(event)
            if stop_after is not None and len(got) >= stop_after:
                return got, False
    return got, True


def _normal(events: list[dict[str, Any]], run_id: str) -> list[tuple[str, Any]]:
    return [(e["event"], json.loads(e["data"].replace(run_id, "RUN"))) for e in events]


async def test_reconnect_with_last_event_id_loses_nothing(
    trellis: Cluster, client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    ref_thread, ref_run = await _create(client, CHATTY)
    reference, ended = await _read(http, ref_thread, ref_run, None, None)
    assert ended
    assert reference[0]["event"] == "metadata"
    assert all(e["id"] for e in reference), "every event needs an id to resume from"

    thread_id, run_id = await _create(client, CHATTY)
    collected: list[dict[str, Any]] = []
    last: str | None = None
    connections = 0
    for _ in range(100):  # bounded
        connections += 1
        got, ended = await _read(http, thread_id, run_id, last, rng.randint(1, 6))
        collected += got
        if got:
            last = got[-1]["id"]
        if ended:
            break
    else:
        raise AssertionError("the stream never ended after 100 reconnections")
    print(f"\nseed={seed}: {len(collected)} events over {connections} connections")
    assert _normal(collected, run_id) == _normal(reference, ref_run)
    ids = [e["id"] for e in collected]
    assert len(set(ids)) == len(ids), "an event was delivered twice"

    # Rejoining a finished run ends promptly: from the last id (nothing left) and from the start.
    for cursor, expected in ((last, 0), (None, len(reference))):
        started = time.monotonic()
        got, ended = await _read(http, thread_id, run_id, cursor, None)
        took = time.monotonic() - started
        resumed = cursor is not None
        print(f"rejoin finished run (Last-Event-ID={resumed}): {len(got)} events, {took:.3f}s")
        assert ended
        assert len(got) == expected
        assert took < 1.0, f"rejoining a finished run took {took:.2f}s"


async def test_stale_cursor_gets_resync_error(
    trellis: Cluster, client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id, run_id = await _create(client, {"events": 150, "pause": 0.0})
    first, _ = await _read(http, thread_id, run_id, None, 1)
    assert first[0]["event"] == "metadata"
    await asyncio.wait_for(client.runs.join(thread_id, run_id), 60)
    got, ended = await _read(http, thread_id, run_id, first[0]["id"], None)
    assert ended
    assert [e["event"] for e in got] == ["error"], got
    assert json.loads(got[0]["data"])["error"] == "ResyncRequired"


async def test_join_returns_promptly_after_the_run_ends(
    trellis: Cluster, client: LangGraphClient
) -> None:
    latencies = []
    for _ in range(5):
        thread_id = str((await client.threads.create())["thread_id"])
        run = await client.runs.create(thread_id, "steps", input={"delay": 0.1})
        await client.runs.join(thread_id, run["run_id"])
        returned = time.time()
        ended = run_row(trellis, run["run_id"])["ended_at"].timestamp()
        latencies.append(returned - ended)
    print(
        f"\njoin latency after run end: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )
    assert statistics.median(latencies) < 1.0, latencies
