"""What the fault tests assert about a thread: executions, side effects, checkpoint history."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langgraph_sdk.client import LangGraphClient

from tests.faults.harness import Cluster

STEPS = ("n1", "n2", "n3", "n4", "n5")


@dataclass(frozen=True)
class Execution:
    """One execution of a node (a row of `fault_attempts`)."""

    id: int
    thread_id: str
    run_id: str
    step: str
    run_attempt: int
    pid: int
    started_at: datetime
    finished_at: datetime | None

    @property
    def started(self) -> float:
        return self.started_at.timestamp()


def executions(c: Cluster, thread_id: str) -> list[Execution]:
    rows = c.sql(
        "SELECT id, thread_id, run_id, step, run_attempt, pid, started_at, finished_at "
        "FROM fault_attempts WHERE thread_id = %s ORDER BY id",
        (thread_id,),
    )
    return [Execution(*row) for row in rows]


def effects(c: Cluster, thread_id: str) -> dict[str, int]:
    rows = c.sql("SELECT step, n FROM fault_effects WHERE thread_id = %s", (thread_id,))
    return dict(rows)


def run_row(c: Cluster, run_id: str) -> dict[str, Any]:
    rows = c.sql(
        "SELECT status, attempt, lease_owner, cancel_action, created_at, started_at, ended_at "
        "FROM runs WHERE run_id = %s",
        (run_id,),
    )
    assert rows, f"run {run_id} has no row"
    keys = (
        "status",
        "attempt",
        "lease_owner",
        "cancel_action",
        "created_at",
        "started_at",
        "ended_at",
    )
    return dict(zip(keys, rows[0], strict=True))


async def history(client: LangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    """The thread's checkpoints, oldest first."""
    states = await client.threads.get_history(thread_id, limit=1000)
    return list(reversed(states))


def assert_contiguous(states: list[dict[str, Any]], steps: int) -> None:
    """Exactly one checkpoint per step -1..steps, each the child of the one before."""
    got = [s["metadata"]["step"] for s in states]
    assert got == list(range(-1, steps + 1)), f"checkpoint steps {got}"
    for parent, child in itertools.pairwise(states):
        assert (
            child["parent_checkpoint"]["checkpoint_id"] == parent["checkpoint"]["checkpoint_id"]
        ), f"step {child['metadata']['step']} is not the child of step {parent['metadata']['step']}"


async def wait_until(
    predicate: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    within: float,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; bounded."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def running_step(c: Cluster, thread_id: str, step: str, within: float = 30.0) -> Execution:
    """Wait until `step` of the thread has started; its execution."""

    def found() -> Execution | None:
        rows = [e for e in executions(c, thread_id) if e.step == step]
        return rows[-1] if rows else None

    result: Execution = await wait_until(found, within=within, what=f"{step} to start")
    return result


def in_flight_reexecutions(
    runs: list[Execution], killed: set[int], steps: tuple[str, ...] = STEPS
) -> list[Execution]:
    """Check the at-least-once boundary on one thread's executions; returns the superseded ones.

    A step may be executed again only if its earlier execution was in flight when
    its worker died: the worker is one that was killed (or paused/terminated, as
    the caller says with `killed`), and that same attempt never started a later step.
    """
    order = {name: i for i, name in enumerate(steps)}
    superseded: list[Execution] = []
    for name in steps:
        rows = [e for e in runs if e.step == name]
        for early in rows[:-1]:
            superseded.append(early)
            assert early.pid in killed, (
                f"{name} executed again although its worker {early.pid} was not killed: {rows}"
            )
            later = [
                e
                for e in runs
                if e.pid == early.pid
                and e.run_attempt == early.run_attempt
                and order[e.step] > order[name]
            ]
            assert not later, (
                f"{name} was completed by attempt {early.run_attempt} (it went on to "
                f"{later[0].step}) yet executed again: {rows}"
            )
            assert early.run_attempt < rows[-1].run_attempt, rows
    return superseded


def assert_writers_match(states: list[dict[str, Any]], runs: list[Execution]) -> None:
    """Each step's checkpoint was written by the attempt whose execution of the node counted,
    or by a later attempt that resumed with that execution's saved writes.

    The second case is LangGraph's durability at work: a worker killed after a node
    finished and its writes were saved, but before the step's checkpoint, leaves the
    writes to the next attempt, which checkpoints the step without running the node again.
    """
    for state in states:
        step = state["metadata"]["step"]
        if step < 1 or step > len(STEPS):
            continue
        name = STEPS[step - 1]
        final = [e for e in runs if e.step == name][-1]
        written_by = state["metadata"]["run_attempt"]
        if written_by == final.run_attempt:
            continue
        problem = (
            f"checkpoint of step {step} written by attempt {written_by} but the last "
            f"execution of {name} was attempt {final.run_attempt}: {final}"
        )
        assert written_by > final.run_attempt, problem
        assert final.finished_at is not None, problem


def assert_effects_match(c: Cluster, thread_id: str, runs: list[Execution]) -> dict[str, int]:
    """Side-effect counts equal the executions that got as far as performing them."""
    counts = effects(c, thread_id)
    for name in {e.step for e in runs}:
        performed = sum(1 for e in runs if e.step == name and e.finished_at is not None)
        assert counts.get(name, 0) == performed, (name, counts, runs)
    return counts


def attempt_segments(events: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
    """A run's stream cut at its `metadata` events: (the attempt it names, the events after it).

    Each attempt at a run starts by publishing `metadata` with its `attempt`: the marker a
    client reads to tell events a re-executed step published again from the first ones.
    """
    segments: list[tuple[int, list[dict[str, Any]]]] = []
    for event in events:
        if event["event"] == "metadata":
            segments.append((int(json.loads(event["data"])["attempt"]), []))
        else:
            assert segments, f"{event['event']} event before any metadata marker"
            segments[-1][1].append(event)
    attempts = [attempt for attempt, _ in segments]
    assert attempts == sorted(set(attempts)), f"attempt markers out of order: {attempts}"
    return segments


def assert_repeats_are_marked(
    events: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> int:
    """No event (identified by `key`) is published twice by one attempt: every repeat follows a
    later attempt marker than its first copy. Returns how many events were repeated."""
    seen: dict[Any, int] = {}
    repeated = 0
    for attempt, segment in attempt_segments(events):
        for event in segment:
            ident = key(event)
            if ident in seen:
                assert seen[ident] < attempt, (
                    f"{ident} published twice by attempt {attempt} with no marker between"
                )
                repeated += 1
            seen[ident] = attempt
    return repeated
