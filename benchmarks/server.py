"""Server overhead benchmark: Trellis over HTTP versus the same graph in-process.

Prints, for a trivial 2-node graph on a scratch database: median and p95 of
create-thread + stream-to-end over N sequential runs, and runs/s at
concurrency 10, next to the graph invoked in-process with the same checkpointer.
Traffic goes to loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph_sdk import get_client
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from benchmarks.floor import floor_server
from benchmarks.graphs import builder
from tests.support.servers import scratch_database, server_process

CONFIG = Path(__file__).resolve().parent / "langgraph.json"


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms"


async def sequential(run: Callable[[], Awaitable[None]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - started)
    return samples


async def throughput(run: Callable[[], Awaitable[None]], total: int, concurrency: int) -> float:
    queue = list(range(total))

    async def lane() -> None:
        while queue:
            queue.pop()
            await run()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def in_process(url: str, n: int, total: int) -> tuple[list[float], float]:
    async with AsyncConnectionPool(
        url,
        min_size=2,
        max_size=20,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        graph = builder.compile(checkpointer=saver)

        async def run() -> None:
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            async for _ in graph.astream({"text": "hi"}, config, durability="sync"):
                pass

        await sequential(run, 10)  # warm-up
        return await sequential(run, n), await throughput(run, total, 10)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def over_http(
    url: str, pid: int, n: int, total: int, concurrency: list[int]
) -> dict[str, object]:
    client = get_client(url=url, api_key=None)

    async def run() -> None:
        thread = await client.threads.create()
        async for _ in client.runs.stream(thread["thread_id"], "bench", input={"text": "hi"}):
            pass

    async def wait_run() -> None:
        await client.runs.wait(None, "bench", input={"text": "hi"})

    await sequential(run, 10)
    spent = cpu_seconds(pid)
    out: dict[str, object] = {"stream": await sequential(run, n)}
    out["cpu"] = (cpu_seconds(pid) - spent) / n
    out["wait"] = await sequential(wait_run, n // 2)
    for c in concurrency:
        out[f"rps{c}"] = await throughput(run, total, c)
    await client.http.client.aclose()
    return out


async def sdk_floor(url: str, n: int) -> list[float]:
    """Create-thread + stream with the official SDK against `benchmarks.floor`'s server."""
    client = get_client(url=url, api_key=None)

    async def run() -> None:
        thread = await client.threads.create()
        async for _ in client.runs.stream(thread["thread_id"], "bench", input={"text": "hi"}):
            pass

    await sequential(run, 10)
    try:
        return await sequential(run, n)
    finally:
        await client.http.client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--total", type=int, default=300, help="runs per throughput measurement")
    args = parser.parse_args()
    with scratch_database() as db:
        local, local_rps = asyncio.run(in_process(db, args.runs, args.total))
        with server_process(database_url=db, config=CONFIG) as (url, proc):
            remote = asyncio.run(over_http(url, proc.pid, args.runs, args.total, [10]))
    with floor_server() as url:
        floor = asyncio.run(sdk_floor(url, args.runs))
    with floor_server(fastapi=True) as url:
        web_floor = asyncio.run(sdk_floor(url, args.runs))
    stream = remote["stream"]
    assert isinstance(stream, list)
    wait = remote["wait"]
    assert isinstance(wait, list)
    overhead = statistics.median(stream) - statistics.median(local)
    print(f"trivial 2-node graph, Postgres durability=sync, {args.runs} sequential runs")
    print(f"  in-process astream to end        {summary(local)}")
    print(f"  trellis create thread + stream   {summary(stream)}")
    print(f"  trellis stateless runs.wait      {summary(wait)}")
    print(f"  server overhead (median)         {overhead * 1000:6.2f} ms")
    print(f"  SDK + HTTP alone (no-op server)  {summary(floor)}  (within the overhead)")
    print(f"  same, no-op FastAPI routes       {summary(web_floor)}  (FastAPI + sse-starlette)")
    cpu = remote["cpu"]
    assert isinstance(cpu, float)
    print(f"  server process CPU per run       {cpu * 1000:6.2f} ms  (the sequential runs above)")
    print(
        f"  runs/s at concurrency 10: in-process {local_rps:6.1f}  trellis {remote['rps10']:6.1f}"
    )


if __name__ == "__main__":
    main()
