"""Redis dies mid-run and comes back (empty) on the same port: runs finish, checkpoints are
complete and a client streaming the run receives the rest of it once Redis is back."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import (
    STEPS,
    assert_contiguous,
    effects,
    executions,
    history,
    running_step,
)
from tests.faults.harness import Cluster, RedisServer, sse_events

DELAY = 0.5


async def test_redis_restart_mid_run(trellis: Cluster, client: LangGraphClient) -> None:
    redis: RedisServer = trellis.redis  # type: ignore[attr-defined]
    thread_id = str((await client.threads.create())["thread_id"])
    run = await client.runs.create(
        thread_id, "steps", input={"delay": DELAY}, stream_mode=["updates"]
    )
    run_id = run["run_id"]
    other_thread = str((await client.threads.create())["thread_id"])
    got: list[dict[str, Any]] = []
    received: list[float] = []

    async def follow() -> None:
        async with (
            httpx.AsyncClient(base_url=trellis.url, timeout=httpx.Timeout(60.0)) as http,
            http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as response,
        ):
            assert response.status_code == 200
            async for event in sse_events(response):
                got.append(event)
                received.append(time.time())

    reader = asyncio.create_task(follow())
    try:
        await running_step(trellis, thread_id, "n2")
        redis.kill()
        down_at = time.time()
        # A run created while Redis is down must still be accepted and executed.
        other = await client.runs.create(other_thread, "steps", input={"delay": 0.1})
        await asyncio.sleep(2.0)
        redis.start()
        up_at = time.time()
        await asyncio.wait_for(reader, 60)
    finally:
        if not reader.done():
            reader.cancel()

    output = await asyncio.wait_for(client.runs.join(thread_id, run_id), 30)
    assert output == {"delay": DELAY, "log": list(STEPS), "total": len(STEPS)}
    assert (await client.runs.get(thread_id, run_id))["status"] == "success"
    other_output = await asyncio.wait_for(client.runs.join(other_thread, other["run_id"]), 30)
    assert other_output["log"] == list(STEPS)
    for tid in (thread_id, other_thread):
        assert_contiguous(await history(client, tid), len(STEPS))
        assert effects(trellis, tid) == dict.fromkeys(STEPS, 1)
        assert len(executions(trellis, tid)) == len(STEPS)
        assert (await client.threads.get(tid))["status"] == "idle"

    updates = [next(iter(json.loads(e["data"]))) for e in got if e["event"] == "updates"]
    after_restart = [t for t in received if t > up_at]
    print(
        f"\nredis down {up_at - down_at:.1f}s; streamed {len(got)} events, "
        f"{len(after_restart)} after Redis came back"
    )
    assert got[0]["event"] == "metadata"
    assert updates == list(STEPS), f"the stream missed updates: {updates}"
    assert after_restart, "nothing arrived after Redis came back"
