"""Duplicates are visible as such: a step re-executed after a takeover re-publishes its events
after a new attempt marker.

Delivery of a step's events is at-least-once: a worker killed (kill -9) in the middle of a
step has published some of its events; the worker that takes the run over executes the step
again from the last checkpoint and publishes them again. Each attempt begins with a
`metadata` event naming it (`{"run_id", "attempt"}`, as the official server's
`langgraph_api/stream.py` does), so a client can tell the second copy from the first: events
after the marker of attempt 2 supersede what attempt 1 published for the same step.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import (
    assert_repeats_are_marked,
    attempt_segments,
    executions,
    running_step,
    wait_until,
)
from tests.faults.harness import Cluster, sse_events

EVENTS, PAUSE = 12, 0.25
"""m2 writes 12 custom events 0.25 s apart: ~3 s in which to kill its worker."""


def _key(event: dict[str, Any]) -> Any:
    """What a client would dedupe on: a custom event's (node, i), an update's node."""
    data = json.loads(event["data"])
    if event["event"] == "custom":
        return ("custom", data["node"], data["i"])
    return (event["event"], *sorted(data))


async def _follow(http: httpx.AsyncClient, path: str, got: list[dict[str, Any]]) -> None:
    async with http.stream("GET", path) as response:
        assert response.status_code == 200, await response.aread()
        async for event in sse_events(response):
            got.append(event)


async def test_a_step_rerun_after_kill9_republishes_its_events_after_a_new_marker(
    trellis: Cluster, client: LangGraphClient
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    run = await client.runs.create(
        thread_id,
        "marked",
        input={"events": EVENTS, "pause": PAUSE},
        stream_mode=["custom", "updates"],
        stream_resumable=True,
    )
    run_id = str(run["run_id"])
    path = f"/threads/{thread_id}/runs/{run_id}/stream"
    live: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=trellis.url, timeout=httpx.Timeout(60.0)) as http:
        reader = asyncio.create_task(_follow(http, path, live))
        try:
            first = await running_step(trellis, thread_id, "m2")
            await wait_until(
                lambda: sum(e["event"] == "custom" for e in live) >= 3,
                within=20,
                what="three of m2's events",
            )
            killed = trellis.signal(trellis.worker(first.pid), signal.SIGKILL)
            trellis.start_worker(wait=False)
            await asyncio.wait_for(reader, 60)
        finally:
            if not reader.done():
                reader.cancel()
        finished = time.time()
        # The stored stream (a late joiner's, from the start) carries the same markers.
        replay: list[dict[str, Any]] = []
        await asyncio.wait_for(_follow(http, path, replay), 30)

    assert (await client.runs.get(thread_id, run_id))["status"] == "success"
    assert (await client.runs.join(thread_id, run_id))["log"] == ["m1", "m2"]
    runs = [e for e in executions(trellis, thread_id) if e.step == "m2"]
    assert [(e.pid == first.pid, e.run_attempt) for e in runs] == [(True, 1), (False, 2)], runs

    segments = attempt_segments(live)
    assert [attempt for attempt, _ in segments] == [1, 2], segments
    for attempt, events in segments:
        for event in events:
            if event["event"] == "custom":  # the marker tells the truth about who wrote it
                assert json.loads(event["data"])["run_attempt"] == attempt, (attempt, event)
    before = [json.loads(e["data"])["i"] for e in segments[0][1] if e["event"] == "custom"]
    after = [json.loads(e["data"])["i"] for e in segments[1][1] if e["event"] == "custom"]
    assert 3 <= len(before) < EVENTS, before
    assert before == list(range(len(before)))
    assert after == list(range(EVENTS))  # m2 ran again from the start, every event re-published
    updates = [
        (a, *json.loads(e["data"])) for a, es in segments for e in es if e["event"] == "updates"
    ]
    assert updates == [(1, "m1"), (2, "m2")], updates  # m1's checkpoint spared it a re-run
    repeated = assert_repeats_are_marked(live, _key)
    assert repeated == len(before)
    ids = [e["id"] for e in live]
    assert all(ids), "every event needs an id to resume from"
    assert len(set(ids)) == len(ids), "a re-published event reused an id"

    assert [(e["event"], e["id"], e["data"]) for e in replay] == [
        (e["event"], e["id"], e["data"]) for e in live
    ]
    print(
        f"\nkill -9 mid-step: attempt 1 published {len(before)} of m2's {EVENTS} events; "
        f"attempt 2 re-published all {len(after)} after its marker; stream ended "
        f"{finished - killed:.1f}s after the kill"
    )
