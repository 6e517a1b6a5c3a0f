"""SIGTERM drains a worker: the step in flight finishes, the run resumes on the other worker."""

from __future__ import annotations

import asyncio
import signal
import time

from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import (
    STEPS,
    assert_contiguous,
    assert_effects_match,
    assert_writers_match,
    executions,
    history,
    in_flight_reexecutions,
    running_step,
)
from tests.faults.harness import Cluster

DELAY = 0.8
GRACE = 4.0  # SHUTDOWN_GRACE_SECONDS in the cluster


async def test_sigterm_hands_the_run_over(trellis: Cluster, client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "steps", input={"delay": DELAY})

    first = await running_step(trellis, thread_id, "n2")
    worker = trellis.worker(first.pid)
    sent = trellis.signal(worker, signal.SIGTERM)
    code = await asyncio.to_thread(worker.wait, GRACE + 15)
    exited = time.time() - sent
    print(f"\nSIGTERM -> exit {code} after {exited:.2f}s (grace {GRACE}s)")
    assert code == 0
    assert exited <= GRACE + 3, f"worker took {exited:.1f}s to exit (grace {GRACE}s)"

    output = await asyncio.wait_for(client.runs.join(thread_id, run["run_id"]), 60)
    assert output == {"delay": DELAY, "log": list(STEPS), "total": len(STEPS)}
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"
    assert (await client.threads.get(thread_id))["status"] == "idle"

    done = executions(trellis, thread_id)
    others = [e for e in done if e.pid != worker.pid]
    assert others, f"the run never moved to the other worker: {done}"
    print(f"handover: next step started {others[0].started - sent:.2f}s after SIGTERM")
    states = await history(client, thread_id)
    assert_contiguous(states, len(STEPS))
    assert_writers_match(states, done)
    superseded = in_flight_reexecutions(done, {worker.pid})
    assert all(e.step == first.step for e in superseded), superseded
    counts = assert_effects_match(trellis, thread_id, done)
    repeated = {step: n for step, n in counts.items() if n > 1}
    assert set(repeated) <= {first.step}, repeated
    # Draining at the step boundary means nothing needed repeating at all.
    assert not superseded, f"the step in flight was cut off instead of drained: {superseded}"
