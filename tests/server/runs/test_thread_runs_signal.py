"""A thread's stream learns of the thread's next run by signal, not by polling: runs created
in the same process signal it directly, runs created by another API process through
Postgres NOTIFY (`trellis_thread_runs`, sent by the statement that inserts the run); the
fallback poll is 30 s, so a stream that sees a run within seconds was told of it. A thread
that goes (deleted, pruned, or expired by its TTL) ends its streams the same way."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client

from server.runs.listener import Listener
from server.runs.signals import THREAD_RUNS_CHANNEL, ThreadRuns
from server.runs.thread_stream import POLL_SECONDS
from tests.support.security import security_settings, trellis


async def test_the_listener_hands_a_notify_to_the_threads_followers(security_db: str) -> None:
    settings = security_settings(security_db)
    thread_runs = ThreadRuns()
    listener = Listener(
        settings.psycopg_url, completions=None, executor=None, thread_runs=thread_runs
    )
    await listener.start()
    try:
        mine, other = thread_runs.watch("t-1"), thread_runs.watch("t-2")
        mine.clear()
        other.clear()  # the listener's first connect asks every follower to look once
        async with await psycopg.AsyncConnection.connect(
            settings.psycopg_url, autocommit=True
        ) as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (THREAD_RUNS_CHANNEL, "t-1"))
        await asyncio.wait_for(mine.wait(), 5)
        assert not other.is_set()
        thread_runs.unwatch("t-1", mine)
        thread_runs.unwatch("t-2", other)
        assert thread_runs._watchers == {}
    finally:
        await listener.stop()


async def test_a_run_created_by_another_process_reaches_the_thread_stream(
    security_db: str,
) -> None:
    assert POLL_SECONDS >= 30
    settings = security_settings(security_db)
    async with trellis(settings) as url_a, trellis(settings) as url_b:
        a, b = get_client(url=url_a, api_key=None), get_client(url=url_b, api_key=None)
        try:
            thread = await b.threads.create()
            tid = thread["thread_id"]
            seen: list[Any] = []

            async def follow() -> float:
                async for part in await a.threads.join_stream(tid):
                    seen.append(part)
                    if part.event == "metadata" and part.data.get("status") == "run_done":
                        return time.monotonic()
                raise AssertionError(f"the thread stream ended: {seen}")

            follower = asyncio.create_task(follow())
            await asyncio.sleep(1.0)  # the follower found no run and waits for one
            started = time.monotonic()
            run = await b.runs.create(tid, "echo", input={"text": "n"}, stream_mode="values")
            ended = await asyncio.wait_for(follower, POLL_SECONDS / 2)
            assert ended - started < POLL_SECONDS / 3  # told, not polled
            assert seen[0].data == {"run_id": run["run_id"], "attempt": 1}
            assert seen[-2].event == "values"
            assert seen[-2].data == {"text": "n!", "steps": ["first", "second"]}
        finally:
            await a.http.client.aclose()
            await b.http.client.aclose()


@pytest.mark.parametrize("how", ["delete", "prune", "ttl"])
async def test_a_deleted_threads_stream_ends_without_waiting_for_the_poll(
    security_db: str, how: str
) -> None:
    settings = security_settings(security_db, thread_sweep_seconds=0.5)
    async with trellis(settings) as url_a, trellis(settings) as url_b:
        a, b = get_client(url=url_a, api_key=None), get_client(url=url_b, api_key=None)
        try:
            ttl = {"strategy": "delete", "ttl": 0.04} if how == "ttl" else None
            thread = await b.threads.create(ttl=ttl)
            tid = thread["thread_id"]

            async def follow() -> list[Any]:
                return [part async for part in await a.threads.join_stream(tid)]

            follower = asyncio.create_task(follow())
            await asyncio.sleep(1.0)
            if how == "delete":
                await b.threads.delete(tid)
            elif how == "prune":
                assert await b.threads.prune([tid]) == {"pruned_count": 1}
            # "ttl": the sweeper deletes it about 2.4 s after its creation
            assert await asyncio.wait_for(follower, POLL_SECONDS / 3) == []
        finally:
            await a.http.client.aclose()
            await b.http.client.aclose()
