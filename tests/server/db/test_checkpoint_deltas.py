"""Delta storage of list channels reads back exactly what the stock saver stores whole.

The same graph runs the same turns twice, once on LangGraph's `AsyncPostgresSaver` and
once on Trellis' saver with deltas on (as the executor runs it); every checkpoint of
both threads must read back alike, through every read the API makes: `aget_tuple` of
the latest and of each checkpoint, `alist` with `limit` and `before`, and the graph's
own state and history.
"""

from __future__ import annotations

import itertools
import operator
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, TypedDict

import psycopg
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from server.db import checkpoint_deltas
from server.db.checkpoint_deltas import BrokenChain, remember_lists
from server.db.checkpoints import FencedPostgresSaver


def newest_first(a: list[int], b: list[int]) -> list[int]:
    """A reducer that reorders: a new item can go anywhere in the list."""
    return sorted(a + b, reverse=True)


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    log: Annotated[list[str], operator.add]
    ranks: Annotated[list[int], newest_first]


def reply(state: State) -> State:
    count = len(state["messages"])
    last = state["messages"][-1]
    return {
        "messages": [AIMessage(f"echo {last.content}", id=f"ai-{count}")],
        "log": [f"turn {count}"],
        "ranks": [count * 7 % 11],
    }


def build(saver: BaseCheckpointSaver[str]) -> CompiledStateGraph[State, None, State, State]:
    builder = StateGraph(State)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


@pytest.fixture
async def pool(
    database_url: str,
) -> AsyncIterator[AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]]:
    async with AsyncConnectionPool(
        database_url,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    ) as opened:
        await AsyncPostgresSaver(opened).setup()  # type: ignore[arg-type]
        yield opened


def config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def play(graph: CompiledStateGraph[State, None, State, State], thread_id: str) -> None:
    """Append, replace by id, remove, update_state as a node, fork from an old checkpoint."""
    main = config(thread_id)
    for turn in range(6):
        await graph.ainvoke({"messages": [HumanMessage(f"q{turn}", id=f"h{turn}")]}, main)
    await graph.ainvoke({"messages": [HumanMessage("edited", id="h2")]}, main)
    await graph.ainvoke({"messages": [RemoveMessage(id="h1")]}, main)
    await graph.aupdate_state(main, {"messages": [AIMessage("note", id="note")]}, as_node="reply")
    await graph.ainvoke({"messages": [HumanMessage("after note", id="h9")]}, main)
    history = [s async for s in graph.aget_state_history(main)]
    fork = history[len(history) // 2].config
    await graph.ainvoke({"messages": [HumanMessage("fork", id="f0")]}, fork)
    for turn in range(1, 3):  # the latest checkpoint is now the fork's
        await graph.ainvoke({"messages": [HumanMessage(f"f{turn}", id=f"f{turn}")]}, main)


def seen(item: CheckpointTuple) -> tuple[object, ...]:
    """What a checkpoint reads back as, less what differs between two threads."""
    return (
        item.checkpoint["channel_values"],
        item.metadata.get("source"),
        item.metadata.get("step"),
        [(channel, value) for _, channel, value in item.pending_writes or []],
        item.parent_config is None,
    )


async def readings(saver: BaseCheckpointSaver[str], thread_id: str) -> list[tuple[object, ...]]:
    listed = [seen(t) async for t in saver.alist(config(thread_id))]
    for t in [t async for t in saver.alist(config(thread_id))]:
        one = await saver.aget_tuple(t.config)
        assert one is not None
        assert seen(one) == seen(t)
    return listed


async def delta_rows(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]], thread_id: str
) -> int:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM checkpoint_blobs WHERE thread_id = %s "
                "AND type LIKE 'trellis.delta|%%'",
                (thread_id,),
            )
        ).fetchone()
    assert row is not None
    return int(row["n"])


async def test_deltas_read_back_as_the_stock_saver_stores_them(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]],
) -> None:
    stock, trellis = str(uuid.uuid4()), str(uuid.uuid4())
    await play(build(AsyncPostgresSaver(pool)), stock)  # type: ignore[arg-type]
    saver = FencedPostgresSaver(pool)
    remember_lists()
    await play(build(saver), trellis)

    assert await delta_rows(pool, trellis) > 20  # the appends were stored as deltas
    expected = await readings(AsyncPostgresSaver(pool), stock)  # type: ignore[arg-type]
    assert len(expected) > 30
    assert await readings(FencedPostgresSaver(pool), trellis) == expected  # from the database
    assert await readings(saver, trellis) == expected  # the writer, from memory where it can

    graph = build(saver)
    latest = await graph.aget_state(config(trellis))
    stock_latest = await build(AsyncPostgresSaver(pool)).aget_state(config(stock))  # type: ignore[arg-type]
    assert latest.values == stock_latest.values
    assert latest.values["messages"][-2].id == "f2"  # the fork's branch
    history = [
        s.values["messages"] async for s in graph.aget_state_history(config(trellis)) if s.values
    ]
    assert any(  # the main branch replaced h2, removed h1, took a note
        [m.id for m in ms][:4] == ["h0", "ai-1", "ai-3", "h2"]
        and ms[3].content == "edited"
        and "note" in [m.id for m in ms]
        for ms in history
    )


async def test_pages_limits_and_before_match_the_stock_saver(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]],
) -> None:
    thread_id = str(uuid.uuid4())
    saver = FencedPostgresSaver(pool)
    remember_lists()
    graph = build(saver)
    for turn in range(40):  # 120 checkpoints: two pages and a part
        await graph.ainvoke(
            {"messages": [HumanMessage(f"q{turn}", id=f"h{turn}")]}, config(thread_id)
        )
    everything = [t async for t in saver.alist(config(thread_id))]
    assert len(everything) == 120
    ids = [t.config["configurable"]["checkpoint_id"] for t in everything]
    assert ids == sorted(ids, reverse=True)
    assert [len(t.checkpoint["channel_values"].get("messages", [])) for t in everything[:3]] == [
        80,
        79,
        78,
    ]
    limited = [t async for t in saver.alist(config(thread_id), limit=70)]
    assert [seen(t) for t in limited] == [seen(t) for t in everything[:70]]
    before = [
        t async for t in saver.alist(config(thread_id), before=everything[65].config, limit=5)
    ]
    assert [seen(t) for t in before] == [seen(t) for t in everything[66:71]]


async def test_a_thread_written_whole_goes_on_in_deltas(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]],
) -> None:
    old, twin = str(uuid.uuid4()), str(uuid.uuid4())
    stock_graph = build(AsyncPostgresSaver(pool))  # type: ignore[arg-type]
    for thread_id in (old, twin):
        for turn in range(3):
            await stock_graph.ainvoke(
                {"messages": [HumanMessage(f"q{turn}", id=f"h{turn}")]}, config(thread_id)
            )
    saver = FencedPostgresSaver(pool)
    remember_lists()
    graph = build(saver)
    for turn in range(3, 6):
        await graph.ainvoke({"messages": [HumanMessage(f"q{turn}", id=f"h{turn}")]}, config(old))
        await stock_graph.ainvoke(
            {"messages": [HumanMessage(f"q{turn}", id=f"h{turn}")]}, config(twin)
        )
    assert await delta_rows(pool, old) > 0
    stock = await readings(AsyncPostgresSaver(pool), twin)  # type: ignore[arg-type]
    assert await readings(FencedPostgresSaver(pool), old) == stock


async def test_chains_end_in_a_whole_value(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint_deltas, "FLOOR_BYTES", 2_000)
    thread_id = str(uuid.uuid4())
    saver = FencedPostgresSaver(pool)
    remember_lists()
    graph = build(saver)
    for turn in range(30):
        await graph.ainvoke(
            {"messages": [HumanMessage("x" * 200, id=f"h{turn}")]}, config(thread_id)
        )
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT type, length(blob) AS size FROM checkpoint_blobs "
                "WHERE thread_id = %s AND channel = 'messages' ORDER BY version",
                (thread_id,),
            )
        ).fetchall()
    whole = [r["size"] for r in rows if not r["type"].startswith("trellis.delta|")]
    assert len(whole) >= 3  # the chain restarted as it outgrew its base
    assert all(later > earlier for earlier, later in itertools.pairwise(whole[1:]))
    state = await graph.aget_state(config(thread_id))
    assert [m.id for m in state.values["messages"]][-2:] == ["h29", "ai-59"]


async def test_a_missing_parent_is_a_clear_error(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]],
) -> None:
    thread_id = str(uuid.uuid4())
    saver = FencedPostgresSaver(pool)
    remember_lists()
    graph = build(saver)
    for turn in range(3):
        await graph.ainvoke(
            {"messages": [HumanMessage(f"q{turn}", id=f"h{turn}")]}, config(thread_id)
        )
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM checkpoint_blobs WHERE thread_id = %s AND channel = 'messages' "
            "AND type NOT LIKE 'trellis.delta|%%'",
            (thread_id,),
        )
    with pytest.raises(BrokenChain, match="'messages'"):
        await FencedPostgresSaver(pool).aget_tuple(config(thread_id))


async def test_the_next_run_reads_what_the_last_one_wrote_from_memory(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]],
) -> None:
    thread_id = str(uuid.uuid4())
    saver = FencedPostgresSaver(pool)
    remember_lists()
    graph = build(saver)
    for turn in range(3):
        await graph.ainvoke(
            {"messages": [HumanMessage(f"q{turn}", id=f"h{turn}")]}, config(thread_id)
        )
    latest = await saver.aget_tuple(config(thread_id))
    assert latest is not None
    version = str(latest.checkpoint["channel_versions"]["messages"])
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT type, blob FROM checkpoint_blobs WHERE thread_id = %s"
                " AND channel = 'messages' AND version = %s",
                (thread_id, version),
            )
        ).fetchone()
    assert row is not None
    held = saver.warm.get((thread_id, "", "messages", version), row["type"], row["blob"])
    assert held is not None
    assert list(held.items) == latest.checkpoint["channel_values"]["messages"]
    assert saver.warm.get((thread_id, "", "messages", version), row["type"], b"other") is None
    cold = await FencedPostgresSaver(pool).aget_tuple(config(thread_id))
    assert cold is not None
    assert cold.checkpoint["channel_values"] == latest.checkpoint["channel_values"]
    # The row changed behind the saver's back, version and all: memory no longer answers.
    type_, blob = saver.serde.dumps_typed([HumanMessage("restored", id="r")])
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE checkpoint_blobs SET type = %s, blob = %s WHERE thread_id = %s"
            " AND channel = 'messages' AND version = %s",
            (type_, blob, thread_id, version),
        )
    changed = await saver.aget_tuple(config(thread_id))
    assert changed is not None
    assert [m.id for m in changed.checkpoint["channel_values"]["messages"]] == ["r"]
    # Another writer moves the thread on: the version no longer matches, the database answers.
    await build(FencedPostgresSaver(pool)).ainvoke(
        {"messages": [HumanMessage("elsewhere", id="x")]}, config(thread_id)
    )
    moved = await saver.aget_tuple(config(thread_id))
    assert moved is not None
    assert [m.id for m in moved.checkpoint["channel_values"]["messages"]] == ["r", "x", "ai-2"]
