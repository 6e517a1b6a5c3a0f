"""What streams cost the API and Redis, and how they end when Redis is away.

- a 1 KB/s reader of a run emitting ~40 MB of events: the API's RSS stays within 10 MB of idle
  (the reader falls behind; the server does not queue for it);
- 100 clients dropping after the first event leave at most the pool's bound of Redis
  connections (`REDIS_MAX_CONNECTIONS`, 16 in this cluster);
- with Redis down, the streams of runs Postgres knows are finished end instead of waiting.

(Idle streams cost Postgres nothing: `test_idle_streams.py`, on a cluster of its own.)
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from langgraph_sdk.client import LangGraphClient

from tests.faults.checks import running_step
from tests.faults.harness import Cluster, RedisServer, sse_events

REDIS_MAX_CONNECTIONS = 16
"""Set for this cluster in `conftest.py`."""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def redis_connections(pid: int, port: int) -> int:
    """TCP connections process `pid` holds to the Redis on `port` (from /proc, loopback)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        established = fields[3] == "01"
        if remote_port == port and established and fields[9] in inodes:
            count += 1
    return count


async def _slow_read(url: str, path: str, body: bytes, stop: asyncio.Event) -> int:
    """POST `body` to `path` and read the SSE answer at about 1 KB/s until `stop`."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow client, not a big buffer
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    read = 0
    try:
        while not stop.is_set():
            chunk = await reader.read(1024)
            if not chunk:
                break
            read += len(chunk)
            await asyncio.sleep(1.0)
    finally:
        writer.close()
    return read


async def test_a_slow_reader_does_not_grow_the_api(
    trellis: Cluster, client: LangGraphClient
) -> None:
    assert trellis.api is not None
    pid = trellis.api.pid
    # Warm the paths a stream takes, then take the idle figure.
    warm = str((await client.threads.create())["thread_id"])
    async for _ in client.runs.stream(
        warm, "chatty", input={"events": 20, "pause": 0, "pad": 4000}, stream_mode="custom"
    ):
        pass
    await asyncio.sleep(1.0)
    idle = rss_kb(pid)

    thread_id = str((await client.threads.create())["thread_id"])
    events_per_node, pad = 3_400, 4_000  # 3 nodes x 3,400 events x ~4 KB: ~40 MB
    body = orjson.dumps(
        {
            "assistant_id": "chatty",
            "input": {"events": events_per_node, "pause": 0, "pad": pad},
            "stream_mode": ["custom"],
        }
    )
    stop = asyncio.Event()
    reader = asyncio.create_task(
        _slow_read(trellis.url, f"/threads/{thread_id}/runs/stream", body, stop)
    )
    peak = idle
    deadline = time.monotonic() + 240
    runs: list[dict[str, Any]] = []
    try:
        while time.monotonic() < deadline:
            peak = max(peak, rss_kb(pid))
            runs = await client.runs.list(thread_id)
            if runs and runs[0]["status"] in ("success", "error"):
                break
            await asyncio.sleep(0.25)
        for _ in range(8):  # what follows the end (the fallback read, the resync)
            peak = max(peak, rss_kb(pid))
            await asyncio.sleep(0.25)
    finally:
        stop.set()
        read = await asyncio.wait_for(reader, 10)
    assert runs
    assert runs[0]["status"] == "success"
    growth_mb = (peak - idle) / 1024
    print(
        f"\nslow reader (1 KB/s, read {read} bytes) on a ~"
        f"{3 * events_per_node * pad / 1e6:.0f} MB run: API RSS idle {idle / 1024:.1f} MB, "
        f"peak {peak / 1024:.1f} MB (+{growth_mb:.1f} MB)"
    )
    assert growth_mb <= 10.0


async def test_dropped_clients_leave_no_redis_connections_behind(
    trellis: Cluster, client: LangGraphClient
) -> None:
    assert trellis.api is not None
    redis: RedisServer = trellis.redis  # type: ignore[attr-defined]
    thread_id = str((await client.threads.create())["thread_id"])
    run = await client.runs.create(
        thread_id, "chatty", input={"events": 100, "pause": 0.05}, stream_mode=["custom"]
    )
    run_id = run["run_id"]
    got_first = 0

    async def drop_after_first(http: httpx.AsyncClient) -> None:
        nonlocal got_first
        async with http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as response:
            async for _ in sse_events(response):
                got_first += 1
                return  # the client goes away

    limits = httpx.Limits(max_connections=110, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=trellis.url, timeout=60.0, limits=limits) as http:
        await asyncio.wait_for(asyncio.gather(*(drop_after_first(http) for _ in range(100))), 60)
    assert got_first == 100
    await asyncio.wait_for(client.runs.join(thread_id, run_id), 60)
    await asyncio.sleep(1.0)
    held = redis_connections(trellis.api.pid, redis.port)
    print(f"\n100 clients dropped after the first event: the API holds {held} Redis connections")
    # The pool's bound, and two connections of its own each: the event feed's (subscriptions)
    # and the event writer's (appends, when this process publishes: ends, cancellations).
    assert held <= REDIS_MAX_CONNECTIONS + 2


async def test_streams_of_finished_runs_end_during_a_redis_outage(
    trellis: Cluster, client: LangGraphClient
) -> None:
    redis: RedisServer = trellis.redis  # type: ignore[attr-defined]
    thread_id = str((await client.threads.create())["thread_id"])
    run = await client.runs.create(
        thread_id, "steps", input={"delay": 0.5}, stream_mode=["updates"]
    )
    run_id = run["run_id"]
    got: list[dict[str, Any]] = []

    async def follow() -> None:
        async with (
            httpx.AsyncClient(base_url=trellis.url, timeout=httpx.Timeout(120.0)) as http,
            http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as response,
        ):
            assert response.status_code == 200
            async for event in sse_events(response):
                got.append(event)

    reader = asyncio.create_task(follow())
    try:
        await running_step(trellis, thread_id, "n2")
        redis.kill()  # and it does not come back during this test
        # The run finishes during the outage (Postgres records it)...
        await asyncio.wait_for(client.runs.join(thread_id, run_id), 60)
        ended_at = time.monotonic()
        # ... and its stream ends, though its end marker never reaches Redis.
        await asyncio.wait_for(reader, 15)
        waited = time.monotonic() - ended_at
        # A reader arriving during the outage is not kept waiting either.
        late_started = time.monotonic()
        async with (
            httpx.AsyncClient(base_url=trellis.url, timeout=httpx.Timeout(60.0)) as http,
            http.stream(
                "GET",
                f"/threads/{thread_id}/runs/{run_id}/stream",
                headers={"Last-Event-ID": "1-0"},
            ) as response,
        ):
            late = [event async for event in sse_events(response)]
        late_waited = time.monotonic() - late_started
    finally:
        if not reader.done():
            reader.cancel()
        redis.start()
    assert (await client.runs.get(thread_id, run_id))["status"] == "success"
    assert got[0]["event"] == "metadata"
    assert all(event["event"] != "error" for event in got)
    assert all(event["event"] != "error" for event in late)
    updates = [next(iter(json.loads(e["data"]))) for e in got if e["event"] == "updates"]
    print(
        f"\nredis down: the stream ended {waited:.1f}s after the run did "
        f"({len(updates)} updates before the outage); a late reader waited {late_waited:.1f}s"
    )
    assert waited <= 10.0
    assert late_waited <= 10.0
