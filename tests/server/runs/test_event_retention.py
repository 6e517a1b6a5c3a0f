"""Run events in Redis are kept for replay only where a client can still ask for them: runs
created with `stream_resumable` keep theirs for the retention period, any other run's go a
short grace after it ends (as the official server, which stores only resumable events)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from server.http.app import create_app
from server.runs.redis_events import RedisEventBus
from tests.support.servers import serve_in_loop

GRACE = 1


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[LangGraphClient, httpx.AsyncClient]]:
    quick = settings.model_copy(update={"run_event_grace_seconds": GRACE})
    async with (
        serve_in_loop(create_app(quick)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        client = get_client(url=url, api_key=None)
        yield client, http
        await client.http.client.aclose()


@pytest.fixture
async def client_redis(settings: Settings) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(settings.redis_url)
    yield conn
    await conn.aclose()


def _keys(run_id: str) -> list[str]:
    return [f"trellis:run:{run_id}:events", f"trellis:run:{run_id}:bytes"]


async def _ttls(conn: redis.Redis, run_id: str) -> list[int]:
    return [int(await conn.ttl(key)) for key in _keys(run_id)]


async def test_wait_leaves_no_replayable_copies_behind(
    served: tuple[LangGraphClient, httpx.AsyncClient], client_redis: redis.Redis
) -> None:
    client, http = served
    thread_id = str((await client.threads.create())["thread_id"])
    response = await http.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "chat", "input": {"messages": [{"role": "user", "content": "hi"}]}},
    )
    run_id = response.headers["content-location"].rsplit("/", 1)[-1]
    for _ in range(100):  # the end event is written just after the answer
        if all(0 < ttl <= GRACE for ttl in await _ttls(client_redis, run_id)):
            break
        await asyncio.sleep(0.02)
    assert all(0 < ttl <= GRACE for ttl in await _ttls(client_redis, run_id))
    # Nobody followed it: only its first event and its end were published.
    kept = await client_redis.xrange(_keys(run_id)[0])
    assert [fields[b"e"] for _, fields in kept] == [b"metadata", b"__end__"]
    await asyncio.sleep(GRACE + 0.5)
    assert await client_redis.exists(*_keys(run_id)) == 0
    # Joining the finished run's stream then ends at once, with nothing to replay.
    async with http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as stream:
        assert stream.status_code == 200
        assert [line async for line in stream.aiter_lines() if line.startswith("event:")] == []


async def test_a_resumable_run_is_replayable_after_it_ends(
    served: tuple[LangGraphClient, httpx.AsyncClient],
    client_redis: redis.Redis,
    settings: Settings,
) -> None:
    client, http = served
    thread_id = str((await client.threads.create())["thread_id"])
    run = await client.runs.create(
        thread_id,
        "chat",
        input={"messages": [{"role": "user", "content": "hi"}]},
        stream_mode=["values", "updates"],
        stream_resumable=True,
    )
    run_id = str(run["run_id"])
    await client.runs.join(thread_id, run_id)
    await asyncio.sleep(GRACE + 0.5)
    ttls = await _ttls(client_redis, run_id)
    assert all(ttl > settings.run_event_retention_seconds - 60 for ttl in ttls), ttls
    events = []
    async with http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("id:"):
                events.append(line[3:].strip())
    assert len(events) >= 3  # metadata, values, updates, values
    # From the middle, with Last-Event-ID: only what follows.
    async with http.stream(
        "GET",
        f"/threads/{thread_id}/runs/{run_id}/stream",
        headers={"Last-Event-ID": events[1]},
    ) as stream:
        rest = [line[3:].strip() async for line in stream.aiter_lines() if line.startswith("id:")]
    assert rest == events[2:]


async def test_a_run_keeps_at_most_max_bytes_of_events_in_redis(
    client_redis: redis.Redis,
) -> None:
    bus = RedisEventBus(client_redis, max_bytes=10_000, prefix=f"t{uuid.uuid4().hex[:8]}")
    run_id = str(uuid.uuid4())
    try:
        for n in range(20):
            await bus.publish(run_id, "values", json.dumps({"n": n, "pad": "p" * 1000}).encode())
        await bus.end(run_id, "success")
        got = [event async for event in bus.subscribe(run_id)]
        assert sum(len(e.data) for e in got) <= 10_000
        assert [json.loads(e.data)["n"] for e in got[:-1]] == list(range(11, 20))
        held = int(await client_redis.get(bus.size_key(run_id)) or 0)
        assert held == sum(len(e.data) for e in got)
        # A reader whose cursor fell out of what is kept is told to resync.
        behind = [event async for event in bus.subscribe(run_id, "1-0")]
        assert [e.event for e in behind] == ["error"]
    finally:
        await bus.forget([run_id])
        await bus.close()
    assert await client_redis.exists(bus.key(run_id), bus.size_key(run_id)) == 0


async def test_a_waited_run_publishes_only_while_someone_follows_it(
    served: tuple[LangGraphClient, httpx.AsyncClient], client_redis: redis.Redis
) -> None:
    client, http = served
    thread_id = str((await client.threads.create())["thread_id"])
    waiting = asyncio.create_task(
        http.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "slow", "input": {"delay": 0.4}},
        )
    )
    run_id = ""
    for _ in range(100):
        runs = await client.runs.list(thread_id)
        if runs and runs[0]["status"] == "running":
            run_id = runs[0]["run_id"]
            break
        await asyncio.sleep(0.05)
    assert run_id
    await asyncio.sleep(0.6)  # s1 is done: its values event had nobody to go to
    held = await client_redis.xrange(_keys(run_id)[0])
    assert [fields[b"e"] for _, fields in held] == [b"metadata"]
    # Someone joins: from then on it is published, and they follow it to the end.
    joined = [part.event async for part in client.runs.join_stream(thread_id, run_id)]
    assert joined.count("values") >= 2
    assert (await waiting).json()["log"] == ["s1", "s2", "s3", "s4"]
