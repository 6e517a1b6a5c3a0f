"""What metrics cost: runs/s at concurrency 10 with `METRICS_ENABLED` on versus off.

Two `trellis serve` processes run at once, each on a scratch database of its own, one with
metrics on and one with them off; each round sends `--total` runs (create thread + stream to
the end, 10 at a time) to one and then the other, in alternating order, so the drift of this
machine's speed falls on both alike. Prints each one's median runs/s and server CPU per run
over the rounds, and the ratio (goal: metrics on no more than 3 % slower). The server with
metrics on is scraped once a round, as Prometheus would.

    uv run python -m benchmarks.metrics_overhead [--rounds 6] [--total 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextlib import ExitStack

import httpx
from langgraph_sdk import get_client

from benchmarks.server import CONFIG, cpu_seconds
from tests.support.servers import NO_RATE_LIMIT_ENV, scratch_database, server_process

CONCURRENCY = 10


async def rounds(
    servers: dict[str, tuple[str, int]], count: int, total: int
) -> dict[str, dict[str, list[float]]]:
    clients = {name: get_client(url=url, api_key=None) for name, (url, _) in servers.items()}

    async def burst(name: str, runs: int) -> float:
        client = clients[name]
        left = list(range(runs))

        async def lane() -> None:
            while left:
                left.pop()
                thread = await client.threads.create()
                async for _ in client.runs.stream(
                    thread["thread_id"], "bench", input={"text": "hi"}
                ):
                    pass

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
        return runs / (time.perf_counter() - started)

    for name in servers:  # warm-up
        await burst(name, 20)
    figures: dict[str, dict[str, list[float]]] = {name: {"rps": [], "cpu": []} for name in servers}
    names = list(servers)
    async with httpx.AsyncClient() as http:
        for round_ in range(count):
            for name in names if round_ % 2 == 0 else reversed(names):
                pid = servers[name][1]
                spent = cpu_seconds(pid)
                figures[name]["rps"].append(await burst(name, total))
                figures[name]["cpu"].append((cpu_seconds(pid) - spent) / total)
            scrape = await http.get(servers["on"][0] + "/metrics")
            assert scrape.status_code == 200, scrape.text
            refused = await http.get(servers["off"][0] + "/metrics")
            assert refused.status_code == 404, refused.text
    for client in clients.values():
        await client.http.client.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--total", type=int, default=100, help="runs per server per round")
    args = parser.parse_args()
    env = {**NO_RATE_LIMIT_ENV, "LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        servers: dict[str, tuple[str, int]] = {}
        for name, enabled in (("on", "true"), ("off", "false")):
            database = stack.enter_context(scratch_database())
            url, proc = stack.enter_context(
                server_process(
                    database_url=database, config=CONFIG, env={**env, "METRICS_ENABLED": enabled}
                )
            )
            servers[name] = (url, proc.pid)
        figures = asyncio.run(rounds(servers, args.rounds, args.total))
    rps = {name: statistics.median(f["rps"]) for name, f in figures.items()}
    cpu = {name: statistics.median(f["cpu"]) for name, f in figures.items()}
    print(
        f"trivial 2-node graph, create thread + stream, concurrency {CONCURRENCY}, "
        f"{args.rounds} alternating rounds of {args.total} runs per server"
    )
    for name in ("off", "on"):
        per_round = " ".join(f"{value:5.1f}" for value in figures[name]["rps"])
        print(
            f"  metrics {name:3s}  median {rps[name]:6.1f} runs/s  server CPU/run "
            f"{cpu[name] * 1000:6.2f} ms  (rounds: {per_round})"
        )
    ratio = rps["on"] / rps["off"]
    # Each round's two bursts ran back to back: their ratio is the least drift-prone figure.
    paired = statistics.median(
        on / off for on, off in zip(figures["on"]["rps"], figures["off"]["rps"], strict=True)
    )
    print(
        f"  on/off runs/s: ratio of medians {ratio:.3f}, median of per-round ratios {paired:.3f} "
        f"({(1 - paired) * 100:+.1f} % slower with metrics; goal <= 3 %)"
    )
    print(f"  server CPU per run on/off {cpu['on'] / cpu['off']:.3f}")


if __name__ == "__main__":
    main()
