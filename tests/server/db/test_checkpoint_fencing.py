"""The fenced saver: checkpoint writes land only while the writer holds the run's lease."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph_sdk.client import LangGraphClient
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from server.db.checkpoints import CURRENT_FENCE, Fence, FencedPostgresSaver, LeaseLost


async def test_writes_need_the_current_lease(server_url: str, database_url: str) -> None:
    run_id, thread_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO threads (thread_id, owner) VALUES (%s, 'fence-test')", (thread_id,)
        )
        conn.execute(
            "INSERT INTO runs (run_id, thread_id, assistant_id, owner, status, lease_owner, "
            "lease_epoch) VALUES (%s, %s, %s, 'fence-test', 'running', 'w1', 2)",
            (run_id, thread_id, uuid.uuid4()),
        )
    pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, object]]] = AsyncConnectionPool(
        database_url,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open()
    saver = FencedPostgresSaver(pool)
    config = {"configurable": {"thread_id": str(thread_id), "checkpoint_ns": ""}}

    async def write() -> None:
        checkpoint = empty_checkpoint()
        await saver.aput(config, checkpoint, {"source": "input", "step": -1}, {})  # type: ignore[arg-type]

    try:
        stale = CURRENT_FENCE.set(Fence(run_id, "w1", 1))  # an epoch a takeover moved past
        with pytest.raises(LeaseLost):
            await write()
        CURRENT_FENCE.reset(stale)
        other = CURRENT_FENCE.set(Fence(run_id, "w2", 2))  # another worker's name
        with pytest.raises(LeaseLost):
            await write()
        CURRENT_FENCE.reset(other)
        assert [c async for c in saver.alist(config)] == []  # nothing landed

        held = CURRENT_FENCE.set(Fence(run_id, "w1", 2))
        await write()
        CURRENT_FENCE.reset(held)
        assert len([c async for c in saver.alist(config)]) == 1
    finally:
        await pool.close()


async def test_fenced_writes_keep_every_value_intact(client: LangGraphClient) -> None:
    """Fenced writes reach Postgres as literal SQL: quotes, placeholders, backslashes, newlines
    and non-ASCII text in the state must come back exactly."""
    odd = 'it\'s 100% "done" %s %(x)s {0} \\ \\x00 \n\t; DROP TABLE runs; -- é 漢字 🙂'
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"text": odd})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["text"] == odd + "!"
    history = await client.threads.get_history(thread["thread_id"])
    assert odd in [h["values"].get("text") for h in history]  # after the input step
