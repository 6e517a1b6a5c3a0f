"""A worker paused past its lease (SIGSTOP) loses the run; its late writes are rejected.

The run's worker is stopped mid-step; the other worker's sweep sees the lapsed
lease, bumps the epoch and resumes the run from its last checkpoint. The paused
worker is then continued while the new one is still running: whatever it tries
to write (checkpoint, pending writes, run outcome) must be refused, so the
history has exactly one writer per step.
"""

from __future__ import annotations

import asyncio
import signal

from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import (
    STEPS,
    assert_contiguous,
    assert_effects_match,
    assert_writers_match,
    executions,
    history,
    in_flight_reexecutions,
    run_row,
    running_step,
    wait_until,
)
from tests.faults.harness import Cluster

DELAY = 0.6


async def test_paused_worker_late_writes_are_fenced(
    trellis: Cluster, client: LangGraphClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "steps", input={"delay": DELAY})
    run_id = run["run_id"]

    first = await running_step(trellis, thread_id, "n2")
    paused = trellis.worker(first.pid)
    paused_at = trellis.signal(paused, signal.SIGSTOP)
    try:
        # The other worker takes over once the lease (2 s) lapses.
        def taken_over() -> bool:
            return any(e.pid != paused.pid for e in executions(trellis, thread_id))

        await wait_until(taken_over, within=30, what="another worker to take the run over")
        takeover = next(e for e in executions(trellis, thread_id) if e.pid != paused.pid)
        print(f"\ntakeover after SIGSTOP: {takeover.started - paused_at:.2f}s (lease 2s)")
    finally:
        # Wake the stale worker while the new one is still executing.
        paused.send_signal(signal.SIGCONT)

    output = await asyncio.wait_for(client.runs.join(thread_id, run_id), 60)
    assert output == {"delay": DELAY, "log": list(STEPS), "total": len(STEPS)}

    # Give the stale worker time to finish its step and try (and fail) to write; its
    # heartbeat may also notice the lost lease first and abandon the step.
    await asyncio.sleep(DELAY + 2.0)

    row = run_row(trellis, run_id)
    assert row["status"] == "success", row
    assert row["attempt"] == takeover.run_attempt, row
    run = await client.runs.get(thread_id, run_id)
    assert run["status"] == "success"
    assert (await client.threads.get(thread_id))["status"] == "idle"
    assert await client.runs.join(thread_id, run_id) == output

    states = await history(client, thread_id)
    assert_contiguous(states, len(STEPS))
    done = executions(trellis, thread_id)
    assert_writers_match(states, done)
    takeover_step = int(takeover.step[1:])
    for state in states:
        step = state["metadata"]["step"]
        attempt = state["metadata"]["run_attempt"]
        if step >= takeover_step:
            assert attempt == takeover.run_attempt, (
                f"checkpoint of step {step} written by stale attempt {attempt}"
            )
        else:
            assert attempt == first.run_attempt, (step, attempt)
    stale = [e for e in done if e.pid == paused.pid]
    assert [e.step for e in stale] == ["n1", "n2"], f"stale worker went on executing: {stale}"
    superseded = in_flight_reexecutions(done, {paused.pid})
    assert [e.step for e in superseded] == ["n2"], superseded
    counts = assert_effects_match(trellis, thread_id, done)
    # n2 was in flight at the pause: its side effect may have happened twice (the
    # at-least-once boundary), every other one exactly once.
    assert counts["n2"] in (1, 2), counts
    assert {k: v for k, v in counts.items() if k != "n2"} == {
        "n1": 1,
        "n3": 1,
        "n4": 1,
        "n5": 1,
    }, counts
    assert paused.poll() is None, "the paused worker died instead of recovering"
    print(f"stale worker's n2 side effect performed: {counts['n2'] == 2}")
