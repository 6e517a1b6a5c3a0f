"""A run that ran to the end is recorded from the graph's last checkpoint, held in memory, not
by reading the whole state back from the saver; one that stopped with work left (an
interrupt) still reads it back. Either way the thread and the run show the same state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from server.http.app import create_app
from server.runs import executor as executor_module
from tests.support.servers import serve_in_loop


@pytest.fixture
async def counted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[LangGraphClient, list[str]]]:
    """A server whose executor notes each time it reads a thread's state back."""
    reads: list[str] = []
    read_state = executor_module.latest_state

    async def noted(graph: Any, thread_id: str, **kwargs: Any) -> Any:
        reads.append(thread_id)
        return await read_state(graph, thread_id, **kwargs)

    monkeypatch.setattr(executor_module, "latest_state", noted)
    async with serve_in_loop(create_app(settings)) as url:
        client = get_client(url=url, api_key=None)
        yield client, reads
        await client.http.client.aclose()


def _recorded(settings: Settings, thread_id: str) -> tuple[str, str]:
    """The last run's checkpoint reference, and the thread's latest checkpoint."""
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT checkpoint_id FROM runs WHERE thread_id = %s "
            "ORDER BY created_at DESC LIMIT 1), (SELECT max(checkpoint_id) FROM checkpoints "
            "WHERE thread_id = %s AND checkpoint_ns = '')",
            (thread_id, thread_id),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
@pytest.mark.parametrize("graph", ["chat", "nested", "branch"])
async def test_a_finished_run_is_recorded_without_reading_the_state_back(
    counted: tuple[LangGraphClient, list[str]], settings: Settings, graph: str, durability: str
) -> None:
    client, reads = counted
    inputs = {
        "chat": {"messages": [{"role": "user", "content": "hi"}]},
        "nested": {"path": []},
        "branch": {"go_left": True},
    }
    thread_id = str((await client.threads.create())["thread_id"])
    for _ in range(2):
        output = await client.runs.wait(
            thread_id,
            graph,
            input=inputs[graph],
            durability=durability,  # type: ignore[arg-type]
        )
    assert reads == []
    state = await client.threads.get_state(thread_id)
    assert output == state["values"]
    assert (await client.threads.get(thread_id))["values"] == state["values"]
    assert (await client.threads.get(thread_id))["status"] == "idle"
    run_ref, latest = _recorded(settings, thread_id)
    assert run_ref == latest == state["checkpoint_id"]


async def test_an_interrupted_run_reads_its_state_back(
    counted: tuple[LangGraphClient, list[str]],
) -> None:
    client, reads = counted
    thread_id = str((await client.threads.create())["thread_id"])
    output = await client.runs.wait(thread_id, "approval", input={"topic": "owls"})
    assert reads == [thread_id]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert output["__interrupt__"] == [i for items in thread["interrupts"].values() for i in items]


async def test_the_hidden_checkpoints_stream_is_not_sent(
    counted: tuple[LangGraphClient, list[str]],
) -> None:
    client, _ = counted
    thread_id = str((await client.threads.create())["thread_id"])
    events = [
        part.event
        async for part in client.runs.stream(
            thread_id,
            "nested",
            input={"path": []},
            stream_mode=["values", "debug"],
            stream_subgraphs=True,
        )
    ]
    assert "checkpoints" not in {event.split("|")[0] for event in events}
    assert "debug" in events
    assert "values" in events
    asked = [
        part.event
        async for part in client.runs.stream(
            thread_id, "nested", input={"path": []}, stream_mode=["checkpoints"]
        )
    ]
    assert asked.count("checkpoints") >= 2
