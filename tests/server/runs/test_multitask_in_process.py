"""`interrupt` and `rollback` on a thread whose run is executing in this process.

The API process executes runs itself here (as the test apps do). Creating a run that must
stop the thread's running run used to claim the new run at once for this process's
executor, in the transaction that only asked the old run to stop: the new row went in as
`running` beside the old one and the insert hit `uq_runs_one_running_per_thread` (a 500).
The new run must wait for the old one to leave `running`, as under separate workers.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from langgraph_sdk.client import LangGraphClient


async def _running(client: LangGraphClient, thread_id: str, run_id: str) -> None:
    for _ in range(300):
        if (await client.runs.get(thread_id, run_id))["status"] == "running":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} never started")


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_running_run_is_stopped_and_the_new_run_succeeds(
    client: LangGraphClient, strategy: Literal["interrupt", "rollback"]
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    first = await client.runs.create(thread_id, "slow", input={"delay": 1.0})
    await _running(client, thread_id, first["run_id"])

    second = await client.runs.create(
        thread_id,
        "slow",
        input={"delay": 0.0},
        multitask_strategy=strategy,
    )

    assert second["run_id"] != first["run_id"]
    assert second["status"] in ("pending", "running")
    output = await asyncio.wait_for(client.runs.join(thread_id, second["run_id"]), 30)
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "success"
    runs = {run["run_id"]: run["status"] for run in await client.runs.list(thread_id)}
    if strategy == "interrupt":
        # Stopped at a step boundary: its first step is on the thread before the new run's.
        assert runs == {first["run_id"]: "interrupted", second["run_id"]: "success"}
        assert output["log"][:1] == ["s1"]
        assert output["log"][-4:] == ["s1", "s2", "s3", "s4"]
        assert len(output["log"]) < 8
    else:
        # Rolled back: its record and its checkpoints are gone.
        assert runs == {second["run_id"]: "success"}
        assert output["log"] == ["s1", "s2", "s3", "s4"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_running_run_and_one_queued_behind_it_are_both_stopped(
    client: LangGraphClient, strategy: Literal["interrupt", "rollback"]
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    first = await client.runs.create(thread_id, "slow", input={"delay": 1.0})
    await _running(client, thread_id, first["run_id"])
    queued = await client.runs.create(
        thread_id, "slow", input={"delay": 1.0}, multitask_strategy="enqueue"
    )
    assert queued["status"] == "pending"

    last = await client.runs.create(
        thread_id, "slow", input={"delay": 0.0}, multitask_strategy=strategy
    )

    output = await asyncio.wait_for(client.runs.join(thread_id, last["run_id"]), 30)
    runs = {run["run_id"]: run["status"] for run in await client.runs.list(thread_id)}
    if strategy == "interrupt":
        assert runs == {
            first["run_id"]: "interrupted",
            queued["run_id"]: "interrupted",  # it never started
            last["run_id"]: "success",
        }
        assert output["log"][-4:] == ["s1", "s2", "s3", "s4"]
        assert len(output["log"]) < 8
    else:
        assert runs == {last["run_id"]: "success"}
        assert output["log"] == ["s1", "s2", "s3", "s4"]
    assert (await client.threads.get(thread_id))["status"] == "idle"
