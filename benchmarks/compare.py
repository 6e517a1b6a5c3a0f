"""Compare two Trellis checkouts side by side: the same runs, alternated between them.

This machine's speed drifts by up to 2x within minutes, so figures from two separate
benchmark runs do not compare. Here both servers run at once, each on its own scratch
database, and every round sends one run to each (in alternating order); the
difference between them is what the change did.

    git worktree add /tmp/before HEAD~1
    uv run python -m benchmarks.compare /tmp/before . [--runs 150]

Prints, per checkout, the median of create-thread + stream-to-end, the server
process's CPU per run and the machine's Postgres CPU per run. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from langgraph_sdk import get_client

from benchmarks.server import CONFIG, cpu_seconds
from benchmarks.workers import postgres_cpu_seconds
from tests.support.servers import NO_RATE_LIMIT_ENV, free_port, scratch_database, wait_ready


@contextmanager
def serve(checkout: Path, database_url: str) -> Iterator[tuple[str, int]]:
    """`trellis serve` from `checkout` (its own code, this environment's packages)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", **NO_RATE_LIMIT_ENV}
    command = [sys.executable, "-m", "server.cli", "serve", "--config", str(CONFIG)]
    proc = subprocess.Popen([*command, "--port", str(port)], cwd=checkout, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(15)


async def alternate(
    servers: list[tuple[str, int]], rounds: int
) -> list[tuple[float, float, float]]:
    """(median latency, server CPU per run, Postgres CPU per run) of each server over
    `rounds` alternating rounds."""
    clients = [get_client(url=url, api_key=None) for url, _ in servers]

    async def run(index: int) -> None:
        client = clients[index]
        thread = await client.threads.create()
        async for _ in client.runs.stream(thread["thread_id"], "bench", input={"text": "hi"}):
            pass

    for _ in range(10):  # warm-up
        for index in range(len(servers)):
            await run(index)
    latencies: list[list[float]] = [[] for _ in servers]
    cpu = [0.0 for _ in servers]
    database = [0.0 for _ in servers]
    for round_ in range(rounds):
        order = range(len(servers)) if round_ % 2 == 0 else reversed(range(len(servers)))
        for index in order:
            pid = servers[index][1]
            spent, spent_db = cpu_seconds(pid), postgres_cpu_seconds()
            started = time.perf_counter()
            await run(index)
            latencies[index].append(time.perf_counter() - started)
            cpu[index] += cpu_seconds(pid) - spent
            database[index] += postgres_cpu_seconds() - spent_db
    return [
        (statistics.median(lat), total / rounds, db / rounds)
        for lat, total, db in zip(latencies, cpu, database, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("checkouts", nargs=2, type=Path)
    parser.add_argument("--runs", type=int, default=150)
    args = parser.parse_args()
    with ExitStack() as stack:
        servers = [
            stack.enter_context(serve(checkout.resolve(), stack.enter_context(scratch_database())))
            for checkout in args.checkouts
        ]
        results = asyncio.run(alternate(servers, args.runs))
    for checkout, (latency, cpu, database) in zip(args.checkouts, results, strict=True):
        figures = (
            f"median {latency * 1000:6.2f} ms  server CPU/run {cpu * 1000:6.2f} ms"
            f"  Postgres CPU/run {database * 1000:6.2f} ms"
        )
        print(f"{checkout!s:40s} {figures}")


if __name__ == "__main__":
    main()
