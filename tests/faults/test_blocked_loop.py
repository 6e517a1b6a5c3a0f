"""A node that blocks the worker's event loop longer than the lease is not executed twice.

`time.sleep` inside an `async def` node freezes the event loop; the lease is
renewed from the heartbeat's own OS thread, so no other worker takes the run.
"""

from __future__ import annotations

from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import effects, executions, history, run_row
from tests.faults.harness import Cluster

BLOCK = 5.0  # the lease is 2 s


async def test_blocked_event_loop_runs_once(trellis: Cluster, client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "blocking", input={"block": BLOCK})
    output = await client.runs.join(thread_id, run["run_id"])
    assert output == {"block": BLOCK, "log": ["hog", "after"]}

    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"
    done = executions(trellis, thread_id)
    assert [e.step for e in done] == ["hog", "after"], done
    assert len({e.pid for e in done}) == 1, f"the run moved to another worker: {done}"
    assert effects(trellis, thread_id) == {"hog": 1, "after": 1}
    assert run_row(trellis, run["run_id"])["attempt"] == 1
    states = await history(client, thread_id)
    assert [s["metadata"]["step"] for s in states] == [-1, 0, 1, 2]
    assert {s["metadata"]["run_attempt"] for s in states} == {1}
    assert (await client.threads.get(thread_id))["status"] == "idle"
