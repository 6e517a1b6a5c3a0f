"""Deleting a thread leaves nothing of it: no row in any table with a `thread_id` column
(Trellis' and LangGraph's alike), and no Redis key of its runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from tests.support.rows import rows_per_table


@pytest.fixture
async def client_redis(settings: Settings) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(settings.redis_url)
    yield conn
    await conn.aclose()


async def _redis_keys(conn: redis.Redis, ids: list[str]) -> list[str]:
    found = []
    async for key in conn.scan_iter(match="*", count=1000):
        name = key.decode()
        if any(ident in name for ident in ids):
            found.append(name)
    return found


async def test_deleting_a_thread_leaves_no_row_and_no_key(
    client: LangGraphClient, settings: Settings, client_redis: redis.Redis
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    run_ids = []
    for turn in range(3):
        run = await client.runs.create(
            thread_id,
            "chat",
            input={"messages": [{"role": "user", "content": f"turn {turn}"}]},
            stream_resumable=True,  # their events stay in Redis for an hour
        )
        await client.runs.join(thread_id, run["run_id"])
        run_ids.append(str(run["run_id"]))
    # An interrupt leaves an approval row behind too.
    await client.runs.wait(thread_id, "approval", input={"topic": "owls"})
    counts = rows_per_table(settings, thread_id)
    for table in ("threads", "runs", "checkpoints", "checkpoint_blobs", "approvals"):
        assert counts[table] > 0, counts
    assert await _redis_keys(client_redis, run_ids)

    started = time.monotonic()
    await client.threads.delete(thread_id)
    took = time.monotonic() - started

    assert rows_per_table(settings, thread_id) == dict.fromkeys(counts, 0)
    assert await _redis_keys(client_redis, [thread_id, *run_ids]) == []
    assert took < 1.0, took


async def test_deleting_a_thread_that_is_gone_is_not_found(client: LangGraphClient) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    await client.threads.delete(thread_id)
    response = await client.http.client.delete(f"/threads/{thread_id}")
    assert response.status_code == 404
