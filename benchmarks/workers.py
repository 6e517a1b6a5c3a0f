"""Split-deployment benchmark: one API process (`serve --no-worker`) and two `trellis worker`s.

Prints, on a scratch database and a private Redis, for the trivial 2-node graph
(`benchmarks/graphs.py`): run latency (create thread + stream to end) median and
p95 over N sequential runs, runs/s at concurrency 10 and 50 (with the CPU each process,
Postgres and the load generator spent per run at 10), how long `join`
takes to answer after a run ends, and how long a run takes to resume on the
other worker after its worker is SIGKILLed (median of a few, with the default
lease). Loopback only; every loop is bounded. Not a test: nothing is asserted.

    uv run python -m benchmarks.workers [--runs 200] [--total 300] [--kills 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from benchmarks.server import cpu_seconds
from tests.faults.harness import Cluster, RedisServer, cluster

HERE = Path(__file__).resolve().parent
FAULT_GRAPHS = HERE.parent / "tests" / "faults" / "graphs" / "faults.py"


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms"


RUN_TIMEOUT = 60.0
"""No single run may take longer than this; a stall is reported, not waited out."""


STALLS: list[str] = []
"""Runs whose stream did not end within RUN_TIMEOUT (counted and reported, then skipped)."""


async def bounded(run: Callable[[], Awaitable[None]]) -> bool:
    try:
        await asyncio.wait_for(run(), RUN_TIMEOUT)
    except TimeoutError:
        STALLS.append(time.strftime("%H:%M:%S"))
        print(
            f"  !! a run's stream did not end within {RUN_TIMEOUT:.0f}s (stall #{len(STALLS)})",
            flush=True,
        )
        return False
    return True


async def sequential(run: Callable[[], Awaitable[None]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        if await bounded(run):
            samples.append(time.perf_counter() - started)
    return samples


async def throughput(run: Callable[[], Awaitable[None]], total: int, concurrency: int) -> float:
    remaining = [total]

    async def lane() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            await bounded(run)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def join_latency(
    c: Cluster, client: LangGraphClient, n: int
) -> tuple[list[float], list[float]]:
    """Run end -> `join` answering (join issued while running), and `join` on a finished run."""
    after_end, finished = [], []
    for _ in range(n):
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "steps", input={"delay": 0.05})
        await client.runs.join(thread_id, run["run_id"])
        returned = time.time()
        (ended,) = c.sql("SELECT ended_at FROM runs WHERE run_id = %s", (run["run_id"],))[0]
        after_end.append(returned - ended.timestamp())
        started = time.perf_counter()
        await client.runs.join(thread_id, run["run_id"])
        finished.append(time.perf_counter() - started)
    return after_end, finished


async def takeover(c: Cluster, client: LangGraphClient, kills: int) -> list[float]:
    """SIGKILL the worker executing a run; time until its next step starts on another."""
    samples = []
    for _ in range(kills):
        for _ in range(1200):  # bounded: 120 s for a replacement to boot
            if len(c.ready_workers()) >= 2:
                break
            await asyncio.sleep(0.1)
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "steps", input={"delay": 0.5})
        rows: list[tuple[int]] = []
        for _ in range(200):  # bounded: 20 s
            rows = c.sql(
                "SELECT pid FROM fault_attempts WHERE thread_id = %s AND step = 'n2'", (thread_id,)
            )
            if rows:
                break
            await asyncio.sleep(0.1)
        if not rows:
            continue
        victim = c.worker(rows[0][0])
        killed_at = c.signal(victim, signal.SIGKILL)
        c.start_worker(wait=False)
        await asyncio.wait_for(client.runs.join(thread_id, run["run_id"]), 60)
        (resumed,) = c.sql(
            "SELECT min(started_at) FROM fault_attempts WHERE thread_id = %s AND pid <> %s",
            (thread_id, victim.pid),
        )[0]
        samples.append(resumed.timestamp() - killed_at)
    return samples


def postgres_cpu_seconds() -> float:
    """CPU time of the machine's Postgres: its processes and the backends it reaped."""
    listed = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True)
    total = 0.0
    for pid in listed.stdout.split():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


class CpuMeter:
    """CPU per run of each process in the benchmark, Postgres included: where runs go."""

    def __init__(self, c: Cluster, redis_pid: int) -> None:
        assert c.api is not None
        self.pids = {"API": c.api.pid, "Redis": redis_pid}
        self.pids.update({f"worker {i + 1}": w.pid for i, w in enumerate(c.workers)})
        self.start: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        out["Postgres"] = postgres_cpu_seconds()
        out["load generator (SDK)"] = time.process_time()
        return out

    def __enter__(self) -> CpuMeter:
        self.start = self._read()
        return self

    def __exit__(self, *_: object) -> None:
        self.end = self._read()

    def report(self, runs: int) -> str:
        parts = [
            f"{name} {(self.end[name] - self.start[name]) / runs * 1000:.2f}" for name in self.start
        ]
        total = sum(self.end[n] - self.start[n] for n in self.start) / runs * 1000
        return f"ms of CPU per run: {', '.join(parts)}; in all {total:.2f}"


async def measure(c: Cluster, args: argparse.Namespace, redis_pid: int) -> None:
    client = get_client(url=c.url, api_key=None)

    async def stream_run() -> None:
        thread = await client.threads.create()
        async for _ in client.runs.stream(thread["thread_id"], "bench", input={"text": "hi"}):
            pass

    print("API (serve --no-worker) + 2 workers, trivial 2-node graph, durability=sync", flush=True)
    try:
        await sequential(stream_run, 10)  # warm-up
        latency = await sequential(stream_run, args.runs)
        print(
            f"  create thread + stream to end    {summary(latency)}   "
            f"({len(latency)} sequential runs)",
            flush=True,
        )
        for n in (10, 50):
            with CpuMeter(c, redis_pid) as cpu:
                rps = await throughput(stream_run, args.total, n)
            print(
                f"  runs/s at concurrency {n:<3}        {rps:7.1f}   ({args.total} runs)",
                flush=True,
            )
            if n == 10:
                print(f"    {cpu.report(args.total)}", flush=True)
        after_end, finished = await join_latency(c, client, 20)
        print(
            f"  join answers after run end       {summary(after_end)}   "
            "(20 runs, join issued while running)"
        )
        print(f"  join on a finished run           {summary(finished)}", flush=True)
        takeovers = await takeover(c, client, args.kills)
        if takeovers:
            print(
                f"  takeover after SIGKILL           median {statistics.median(takeovers):.2f} s  "
                f"(min {min(takeovers):.2f}, max {max(takeovers):.2f}; {len(takeovers)} kills; "
                f"RUN_LEASE_SECONDS=4, RUN_SWEEP_SECONDS=1)"
            )
        print(f"  streams that never ended (>{RUN_TIMEOUT:.0f}s, excluded above): {len(STALLS)}")
    finally:
        await client.http.client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--total", type=int, default=300, help="runs per throughput measurement")
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trellis-bench-"))
    config = work / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {
                    "bench": str(HERE / "graphs.py") + ":graph",
                    "steps": str(FAULT_GRAPHS) + ":steps",
                }
            }
        )
    )
    redis = RedisServer(work)
    redis.start()
    env = {
        "REDIS_URL": redis.url,
        "RUN_LEASE_SECONDS": "4",
        "RUN_SWEEP_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }
    try:
        with cluster(work, workers=2, env=env, config=config) as c:
            assert redis.proc is not None
            asyncio.run(measure(c, args, redis.proc.pid))
    finally:
        redis.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
