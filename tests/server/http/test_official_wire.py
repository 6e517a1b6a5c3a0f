"""Wire details matched to the official server (langgraph-api 0.16.7 with
langgraph-runtime-inmem 0.36), over a real server with the official langgraph-sdk:

* joining a run with an unknown or malformed `Last-Event-ID` starts after the newest event
  (`langgraph_runtime_inmem/ops.py` `Runs.Stream.join` + `inmem_stream.py`
  `restore_messages`), while `GET /threads/{id}/stream` refuses a bad id with 422
  (`api/threads.py` `join_thread_stream` -> `utils.validate_stream_id`);
* a run with both `config.configurable` and `context` is a 400 (`models/run.py`
  `create_valid_run`);
* `POST /threads/{id}/state` on a thread that never ran a graph is a 400 (`ops.py`
  `Threads.State.post`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from server.runs.manager import CONTEXT_AND_CONFIGURABLE
from tests.support.api import assert_error


async def _parts(stream: Any) -> list[Any]:
    async with asyncio.timeout(30):
        return [part async for part in stream]


async def _slow_run_with_a_first_update(
    client: LangGraphClient,
) -> tuple[str, str, asyncio.Task[list[Any]], list[Any]]:
    """A `slow` run (s1..s4) and a reader from its start that has seen the `s1` update."""
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "slow", input={"delay": 0.4}, stream_mode=["updates"], stream_resumable=True
    )
    first_seen: list[Any] = []
    seen_s1 = asyncio.Event()

    async def read_all() -> list[Any]:
        async for part in client.runs.join_stream(tid, run["run_id"]):
            first_seen.append(part)
            if part.event == "updates" and "s1" in part.data:
                seen_s1.set()
        return first_seen

    reader = asyncio.create_task(read_all())
    await asyncio.wait_for(seen_s1.wait(), 30)
    return tid, run["run_id"], reader, first_seen


@pytest.mark.parametrize("cursor", ["garbage", "1-2-3", "99999999999999-0"])
async def test_a_live_join_with_an_unknown_or_malformed_id_starts_after_the_newest_event(
    client: LangGraphClient, cursor: str
) -> None:
    tid, run_id, reader, _ = await _slow_run_with_a_first_update(client)
    joined = await _parts(client.runs.join_stream(tid, run_id, last_event_id=cursor))
    everything = await asyncio.wait_for(reader, 30)

    # Nothing already published is replayed (not `metadata`, not `s1`); what follows is.
    assert [part.event for part in joined] == ["updates"] * len(joined)
    steps = [next(iter(part.data)) for part in joined]
    assert "s1" not in steps
    assert steps[-1] == "s4"
    assert steps == ["s1", "s2", "s3", "s4"][-len(steps) :]
    # ... under the ids the run's events have (a resumable run).
    ids = {part.id for part in everything}
    assert all(part.id in ids for part in joined)


@pytest.mark.parametrize("cursor", ["not-an-id", "-1", "abc-def", "1-2-3", "99999999999999-0"])
async def test_a_finished_runs_join_with_an_unknown_or_malformed_id_replays_nothing(
    client: LangGraphClient, cursor: str
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "echo", input={"text": "m"}, stream_resumable=True)
    await client.runs.join(tid, run["run_id"])

    assert await _parts(client.runs.join_stream(tid, run["run_id"], last_event_id=cursor)) == []
    # A known id still resumes after it, and no id replays everything.
    everything = await _parts(client.runs.join_stream(tid, run["run_id"]))
    assert everything[0].event == "metadata"
    after_first = await _parts(
        client.runs.join_stream(tid, run["run_id"], last_event_id=everything[0].id)
    )
    assert [(p.event, p.data) for p in after_first] == [(p.event, p.data) for p in everything[1:]]


@pytest.mark.parametrize("cursor", ["garbage", "1-", "1-x", "-1"])
async def test_the_thread_stream_refuses_a_bad_id_as_the_official_server(
    http: httpx.AsyncClient, client: LangGraphClient, cursor: str
) -> None:
    thread = await client.threads.create()
    response = await http.get(
        f"/threads/{thread['thread_id']}/stream", headers={"Last-Event-ID": cursor}
    )
    body = assert_error(response, 422)
    assert body["detail"] == "Invalid last-event-id: must be a valid Redis stream ID"


async def test_the_thread_stream_takes_the_other_official_id_forms(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """`-` (from the start), `<ms>` and `<ms>-*` are stream ids the official server accepts."""
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "echo", input={"text": "f"}, stream_mode="values")
    await client.runs.join(tid, run["run_id"])
    async with asyncio.timeout(30):
        parts = []
        async for part in await client.threads.join_stream(tid, last_event_id="-"):
            parts.append(part)
            if part.event == "metadata" and part.data.get("status") == "run_done":
                break
    assert parts[0].data == {"run_id": run["run_id"], "attempt": 1}  # replayed from the start
    assert parts[-1].data == {"status": "run_done", "run_id": run["run_id"]}
    for cursor in ("1", "1-*"):
        async with http.stream(
            "GET", f"/threads/{tid}/stream", headers={"Last-Event-ID": cursor}
        ) as response:
            assert response.status_code == 200, cursor


@pytest.mark.parametrize("route", ["create", "wait", "stream"])
async def test_a_run_with_both_configurable_and_context_is_a_400(
    client: LangGraphClient, route: str
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    kwargs: dict[str, Any] = {
        "input": {"text": "c"},
        "config": {"configurable": {"model": "a"}},
        "context": {"model": "b"},
    }

    async def start() -> object:
        if route == "create":
            return await client.runs.create(tid, "echo", **kwargs)
        if route == "wait":
            return await client.runs.wait(tid, "echo", **kwargs)
        return await _parts(client.runs.stream(tid, "echo", **kwargs))

    with pytest.raises(httpx.HTTPStatusError) as caught:
        await start()
    assert caught.value.response.status_code == 400
    assert caught.value.response.json()["detail"] == CONTEXT_AND_CONFIGURABLE
    assert await client.runs.list(tid) == []  # nothing was created

    # Either alone is fine, and so is an empty one beside the other.
    for alone in (
        {"config": {"configurable": {"model": "a"}}},
        {"context": {"model": "b"}},
        {"config": {"configurable": {}}, "context": {"model": "b"}},
    ):
        await client.runs.wait(tid, "echo", input={"text": "c"}, **alone)


async def test_updating_the_state_of_a_thread_that_never_ran_is_a_400(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    response = await http.post(f"/threads/{tid}/state", json={"values": {"text": "x"}})
    body = assert_error(response, 400)
    assert body["detail"].startswith(f"Thread '{tid}' has no assigned graph ID.")
    assert "manually update the thread metadata" in body["detail"]
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await client.threads.update_state(tid, {"text": "x"})
    assert caught.value.response.status_code == 400

    # Once a run put a graph on it, the same update works.
    await client.runs.wait(tid, "echo", input={"text": "y"})
    updated = await client.threads.update_state(tid, {"text": "x"})
    assert updated["checkpoint"]["thread_id"] == tid
