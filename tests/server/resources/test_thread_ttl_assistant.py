"""`keep_latest` on the built-in assistant's thread: one checkpoint left, its state readable,
and the conversation goes on from it (served from the project's langgraph.json, offline)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client

from server.http.app import create_app
from tests.support.servers import builtin_settings, create_database, drop_database, serve_in_loop


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, str]]:
    database = create_database()
    settings = builtin_settings(
        database, tmp_path_factory.mktemp("trellis-data"), thread_sweep_seconds=0.5
    )
    async with serve_in_loop(create_app(settings)) as url:
        yield url, settings.psycopg_url
    drop_database(database)


def root_checkpoints(dsn: str, thread_id: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''",
            (thread_id,),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_keep_latest_on_the_assistants_thread(served: tuple[str, str]) -> None:
    url, dsn = served
    client = get_client(url=url, api_key=None)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    for question in ("What is a confidence score?", "How are documents ingested?"):
        message = {"role": "user", "content": question}
        await client.runs.wait(tid, "assistant", input={"messages": [message]})
    before: Any = await client.threads.get_state(tid)
    assert root_checkpoints(dsn, tid) > 2

    assert await client.threads.prune([tid], strategy="keep_latest") == {"pruned_count": 1}
    assert root_checkpoints(dsn, tid) == 1
    after: Any = await client.threads.get_state(tid)
    assert after["values"] == before["values"]
    assert after["checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]

    message = {"role": "user", "content": "What is a confidence score?"}
    await client.runs.wait(tid, "assistant", input={"messages": [message]})
    again: Any = await client.threads.get_state(tid)
    n = len(before["values"]["messages"])
    assert again["values"]["messages"][:n] == before["values"]["messages"]
    assert len(again["values"]["messages"]) > n
    await client.http.client.aclose()


async def test_keep_last_on_the_assistants_thread_keeps_every_kept_state_whole(
    served: tuple[str, str],
) -> None:
    url, dsn = served
    client = get_client(url=url, api_key=None)
    thread = await client.threads.create(metadata={"checkpoint_keep_last": 3})
    tid = thread["thread_id"]
    questions = ("What is a confidence score?", "How are documents ingested?", "Why?")
    for question in questions:
        message = {"role": "user", "content": question}
        await client.runs.wait(tid, "assistant", input={"messages": [message]})
    latest: Any = await client.threads.get_state(tid)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if root_checkpoints(dsn, tid) == 3:
            break
        await asyncio.sleep(0.2)
    assert root_checkpoints(dsn, tid) == 3
    history = await client.threads.get_history(tid, limit=10)
    assert len(history) == 3
    assert history[0]["values"] == latest["values"]
    # The oldest kept state still has the conversation up to it (its messages were
    # rebuilt from the snapshot seeded there, not lost with the deleted ancestors).
    assert len(history[-1]["values"]["messages"]) >= 5
    await client.http.client.aclose()
