"""Multitask strategies on a busy thread, both cancel actions, cancel with a dead worker,
`on_disconnect=cancel` and `after_seconds`, against API + worker processes."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import (
    STEPS,
    executions,
    history,
    run_row,
    running_step,
    wait_until,
)
from tests.faults.harness import Cluster, sse_events

DELAY = 0.4


def _log(tag: str, steps: tuple[str, ...] = STEPS) -> list[str]:
    return [f"{tag}:{s}" for s in steps]


async def _start(client: LangGraphClient, thread_id: str, tag: str, **kwargs: Any) -> str:
    run = await client.runs.create(thread_id, "steps", input={"tag": tag, "delay": DELAY}, **kwargs)
    return str(run["run_id"])


async def _thread(client: LangGraphClient) -> str:
    return str((await client.threads.create())["thread_id"])


async def test_reject_on_busy_thread(trellis: Cluster, client: LangGraphClient) -> None:
    thread_id = await _thread(client)
    first = await _start(client, thread_id, "a")
    await running_step(trellis, thread_id, "n1")
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await _start(client, thread_id, "b", multitask_strategy="reject")
    assert refused.value.response.status_code == 409
    assert "detail" in refused.value.response.json()
    output = await client.runs.join(thread_id, first)
    assert output["log"] == _log("a")
    runs = await client.runs.list(thread_id)
    assert [r["run_id"] for r in runs] == [first]


async def test_enqueue_runs_in_strict_order(trellis: Cluster, client: LangGraphClient) -> None:
    thread_id = await _thread(client)
    ids = [await _start(client, thread_id, tag, multitask_strategy="enqueue") for tag in "abc"]
    output = await asyncio.wait_for(client.runs.join(thread_id, ids[-1]), 60)
    assert output["log"] == _log("a") + _log("b") + _log("c")
    for run_id in ids:
        assert (await client.runs.get(thread_id, run_id))["status"] == "success"
    by_run: dict[str, list[Any]] = {}
    for e in executions(trellis, thread_id):
        by_run.setdefault(e.run_id, []).append(e)
    for earlier, later in itertools.pairwise(ids):
        assert max(e.finished_at for e in by_run[earlier]) <= min(
            e.started_at for e in by_run[later]
        )


async def test_interrupt_stops_earlier_run_at_step_boundary(
    trellis: Cluster, client: LangGraphClient
) -> None:
    thread_id = await _thread(client)
    first = await _start(client, thread_id, "a")
    await running_step(trellis, thread_id, "n2")
    second = await _start(client, thread_id, "b", multitask_strategy="interrupt")
    output = await asyncio.wait_for(client.runs.join(thread_id, second), 60)

    assert (await client.runs.get(thread_id, first))["status"] == "interrupted"
    assert (await client.runs.get(thread_id, second))["status"] == "success"
    earlier = [e for e in executions(trellis, thread_id) if e.run_id == first]
    # Stopped at a step boundary: every step it began, it finished (none cut off mid-way).
    assert earlier
    assert all(e.finished_at is not None for e in earlier), earlier
    done_steps = [e.step for e in earlier]
    assert done_steps == list(STEPS[: len(done_steps)])
    assert len(done_steps) < len(STEPS)
    assert output["log"] == _log("a", tuple(done_steps)) + _log("b")
    states = await history(client, thread_id)
    kept = [s for s in states if s["metadata"]["run_id"] == first]
    # Its checkpoints are kept: input, loop start and one per finished step.
    assert [s["metadata"]["step"] for s in kept] == list(range(-1, len(done_steps) + 1))
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_rollback_deletes_earlier_run_and_checkpoints(
    trellis: Cluster, client: LangGraphClient
) -> None:
    thread_id = await _thread(client)
    first = await _start(client, thread_id, "a")
    await running_step(trellis, thread_id, "n2")
    second = await _start(client, thread_id, "b", multitask_strategy="rollback")
    output = await asyncio.wait_for(client.runs.join(thread_id, second), 60)

    assert output["log"] == _log("b")
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await client.runs.get(thread_id, first)
    assert gone.value.response.status_code == 404
    states = await history(client, thread_id)
    assert states
    assert all(s["metadata"]["run_id"] == second for s in states)
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_cancel_interrupt_wait(
    trellis: Cluster, client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _thread(client)
    run_id = await _start(client, thread_id, "a")
    await running_step(trellis, thread_id, "n2")
    response = await http.post(
        f"/threads/{thread_id}/runs/{run_id}/cancel", params={"wait": 1, "action": "interrupt"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "interrupted"
    assert run_row(trellis, run_id)["status"] == "interrupted"
    assert (await client.threads.get(thread_id))["status"] == "idle"
    states = await history(client, thread_id)
    assert states
    assert {s["metadata"]["run_id"] for s in states} == {run_id}
    assert [s["metadata"]["step"] for s in states][:3] == [-1, 0, 1]


async def test_cancel_rollback_wait(
    trellis: Cluster, client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _thread(client)
    run_id = await _start(client, thread_id, "a")
    await running_step(trellis, thread_id, "n2")
    response = await http.post(
        f"/threads/{thread_id}/runs/{run_id}/cancel", params={"wait": 1, "action": "rollback"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "interrupted"
    gone = await http.get(f"/threads/{thread_id}/runs/{run_id}")
    assert gone.status_code == 404, gone.text
    assert await history(client, thread_id) == []
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_on_disconnect_cancel(trellis: Cluster, client: LangGraphClient) -> None:
    thread_id = await _thread(client)
    body = {
        "assistant_id": "steps",
        "input": {"tag": "a", "delay": DELAY},
        "stream_mode": ["updates"],
        "on_disconnect": "cancel",
    }
    seen = []
    async with (
        httpx.AsyncClient(base_url=trellis.url, timeout=30.0) as http,
        http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response,
    ):
        assert response.status_code == 200
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        async for event in sse_events(response):
            seen.append(event["event"])
            if event["event"] == "updates":
                break  # n1 done: hang up mid-run
    assert seen[0] == "metadata"

    async def interrupted() -> bool:
        return (await client.runs.get(thread_id, run_id))["status"] == "interrupted"

    await wait_until(interrupted, within=10, what="the run to be interrupted after disconnect")
    steps = [e.step for e in executions(trellis, thread_id)]
    assert len(steps) < len(STEPS), steps
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_after_seconds_is_honoured(trellis: Cluster, client: LangGraphClient) -> None:
    thread_id = await _thread(client)
    run_id = await _start(client, thread_id, "a", after_seconds=2)
    assert (await client.runs.get(thread_id, run_id))["status"] == "pending"
    await asyncio.wait_for(client.runs.join(thread_id, run_id), 30)
    row = run_row(trellis, run_id)
    first = executions(trellis, thread_id)[0]
    delay = (first.started_at - row["created_at"]).total_seconds()
    print(f"\nafter_seconds=2: first step started {delay:.2f}s after creation")
    assert delay >= 2.0, delay
    assert (row["started_at"] - row["created_at"]).total_seconds() >= 2.0


async def test_cancel_with_dead_worker(
    trellis: Cluster, client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """Every worker is SIGKILLed mid-run; cancel with wait still answers within a few seconds.

    Last in the file (and the directory) on purpose: a test after it waits for two workers
    to boot.
    """
    thread_id = await _thread(client)
    run_id = await _start(client, thread_id, "a")
    await running_step(trellis, thread_id, "n2")
    for worker in trellis.alive_workers():
        trellis.signal(worker, signal.SIGKILL)
    started = time.monotonic()
    try:
        response = await http.post(
            f"/threads/{thread_id}/runs/{run_id}/cancel",
            params={"wait": 1, "action": "interrupt"},
            timeout=15.0,
        )
    except httpx.ReadTimeout:
        row = run_row(trellis, run_id)
        thread = await client.threads.get(thread_id)
        pytest.fail(
            "cancel?wait=1 did not answer within 15 s with no worker alive: "
            f"run {row['status']} (cancel_action={row['cancel_action']}), thread {thread['status']}"
        )
    took = time.monotonic() - started
    print(f"\ncancel?wait=1 with the only workers dead answered in {took:.2f}s")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "interrupted"
    assert (await client.threads.get(thread_id))["status"] != "busy"
