"""SIGKILL workers at random points while runs execute: every run still finishes exactly once.

One API process (`serve --no-worker`) and two workers share a scratch database
and Redis. Runs of a 5-step graph (each step records its execution and a side
effect keyed by (thread, step)) are created at a staggered pace while a random
worker is SIGKILLed several times and replaced. The at-least-once boundary is
the step in flight at the kill: it may run again, nothing else may.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import statistics
import time
from typing import Any

from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import (
    STEPS,
    assert_contiguous,
    assert_effects_match,
    assert_writers_match,
    executions,
    history,
    in_flight_reexecutions,
    wait_until,
)
from tests.faults.harness import Cluster

RUNS = 24
KILLS = 4
DELAY = 0.3


def _victim(c: Cluster, rng: random.Random, since: float) -> Any:
    """A ready worker, preferring one executing a step right now."""
    ready = c.ready_workers()
    busy_pids = {
        row[0]
        for row in c.sql(
            "SELECT DISTINCT pid FROM fault_attempts WHERE finished_at IS NULL "
            "AND started_at > to_timestamp(%s)",
            (since,),
        )
    }
    busy = [w for w in ready if w.pid in busy_pids]
    return rng.choice(busy or ready)


async def test_kill9_workers_every_run_finishes_once(
    trellis: Cluster, client: LangGraphClient
) -> None:
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"\nkill -9 harness seed={seed} (FAULT_SEED={seed} to replay)")

    reference_thread = (await client.threads.create())["thread_id"]
    reference = await client.runs.wait(reference_thread, "steps", input={"delay": DELAY})
    assert reference == {"delay": DELAY, "log": list(STEPS), "total": len(STEPS)}

    threads = [(await client.threads.create())["thread_id"] for _ in range(RUNS)]
    runs: dict[str, str] = {}
    # A third worker for this test, so a kill never has to wait for a replacement to boot.
    trellis.start_worker()
    started = time.time()
    kills: list[tuple[int, float]] = []
    waves = [threads[i::KILLS] for i in range(KILLS)]
    for wave in waves:
        wave_start = time.time()
        for thread_id in wave:
            run = await client.runs.create(thread_id, "steps", input={"delay": DELAY})
            runs[thread_id] = run["run_id"]
            await asyncio.sleep(rng.uniform(0.0, 0.15))
        # Kill at a random point while some of this wave's steps are in flight.
        await wait_until(
            lambda since=wave_start: trellis.sql(
                "SELECT 1 FROM fault_attempts "
                "WHERE finished_at IS NULL AND started_at > to_timestamp(%s)",
                (since,),
            ),
            within=60,
            what="a step of the wave in flight",
        )
        await asyncio.sleep(rng.uniform(0.0, 1.2))
        await wait_until(
            lambda: len(trellis.ready_workers()) >= 2, within=120, what="two ready workers"
        )
        victim = _victim(trellis, rng, wave_start)
        kills.append((victim.pid, trellis.signal(victim, signal.SIGKILL)))
        trellis.start_worker(wait=False)

    outputs = await asyncio.wait_for(
        asyncio.gather(*(client.runs.join(t, runs[t]) for t in threads)), 180
    )
    elapsed = time.time() - started
    killed = {pid for pid, _ in kills}

    superseded_total = 0
    takeovers: list[float] = []
    moved = 0
    for thread_id, output in zip(threads, outputs, strict=True):
        run = await client.runs.get(thread_id, runs[thread_id])
        assert run["status"] == "success", (thread_id, run["status"])
        assert output == reference, (thread_id, output)
        thread = await client.threads.get(thread_id)
        assert thread["status"] == "idle", (thread_id, thread["status"])

        states = await history(client, thread_id)
        assert_contiguous(states, len(STEPS))
        assert {s["metadata"]["run_id"] for s in states} == {runs[thread_id]}
        done = executions(trellis, thread_id)
        assert_writers_match(states, done)
        superseded_total += len(in_flight_reexecutions(done, killed))
        counts = assert_effects_match(trellis, thread_id, done)
        assert set(counts) == set(STEPS), counts
        # A kill can cost at most one duplicate side effect per run per kill of its worker.
        assert sum(counts.values()) - len(STEPS) <= len(kills), counts

        if len({e.pid for e in done}) > 1:
            moved += 1
        for prev, nxt in itertools.pairwise(done):
            if prev.pid != nxt.pid:
                assert prev.pid in killed, (prev, nxt)
                kill_time = max(t for pid, t in kills if pid == prev.pid)
                takeovers.append(nxt.started - kill_time)

    duplicates = sum(
        n - 1
        for (n,) in trellis.sql("SELECT n FROM fault_effects WHERE thread_id = ANY(%s)", (threads,))
    )
    print(
        f"{RUNS} runs, {len(kills)} SIGKILLs, {elapsed:.1f}s; runs that moved worker: {moved}; "
        f"steps re-executed (in flight at a kill): {superseded_total}; "
        f"duplicate side effects (in-flight steps only): {duplicates}"
    )
    if takeovers:
        print(
            "takeover after SIGKILL (kill -> next step starts elsewhere): "
            f"min {min(takeovers):.2f}s median {statistics.median(takeovers):.2f}s "
            f"max {max(takeovers):.2f}s over {len(takeovers)} handovers"
        )
    assert moved > 0, "no run was ever taken over: the kills missed every run"
