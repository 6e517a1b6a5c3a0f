"""Retention benchmark (issue 21): keep-last-20 on the 1,000-turn thread of `long_thread.py`.

The thread of the long-threads benchmark (`benchmarks/chat.py`, each turn a ~1 KB user and
a ~1 KB AI message, `runs.wait` over HTTP with the official SDK) is driven to `--turns`
turns on a scratch database, with retention off. Then its metadata asks for
`checkpoint_keep_last: N` (default 20) and one more turn runs: that run marks the thread
for the sweeper (`THREAD_SWEEP_SECONDS=1` here), which trims it. Printed:

- per table with a `thread_id` column, the `pg_column_size` of the thread's rows (live rows,
  as `long_thread.thread_bytes` measures them) and row counts, before and after;
- how long the sweeper took to trim (from the turn's end until the checkpoints are N);
- that the thread still works: its state has every message, its history (read page by
  page) holds N states,
  and one more turn answers with all of them plus the new two.

    uv run python -m benchmarks.retention [--turns 1000] [--keep 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from langgraph_sdk import get_client

from benchmarks.long_thread import CONFIG, GRAPH, mb, server_log, thread_bytes, user_text
from tests.support.servers import free_port, scratch_database, spawn, wait_ready


def checkpoints(url: str, thread_id: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def rows(url: str, thread_id: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND column_name = 'thread_id' ORDER BY table_name"
            ).fetchall()
        ]
        counted = {}
        for table in tables:
            row = conn.execute(
                f'SELECT count(*) FROM "{table}" WHERE thread_id::text = %s', (thread_id,)
            ).fetchone()
            counted[table] = int(row[0]) if row else 0
    return counted


async def turn(client: Any, thread_id: str, n: int) -> dict[str, Any]:
    values = await client.runs.wait(
        thread_id, GRAPH, input={"messages": [{"role": "user", "content": user_text(n)}]}
    )
    assert isinstance(values, dict), values
    return values


async def history_states(url: str, thread_id: str, per_request: float) -> int:
    """Every state of the thread's history, read page by page (`X-Next-Before`)."""
    count, before = 0, None
    async with httpx.AsyncClient(base_url=url, timeout=per_request) as http:
        while True:
            body: dict[str, Any] = {"limit": 1000}
            if before is not None:
                body["before"] = before
            page = await http.post(f"/threads/{thread_id}/history", json=body)
            page.raise_for_status()
            count += len(page.json())
            before = page.headers.get("X-Next-Before")
            if before is None:
                return count


async def drive(args: argparse.Namespace, db: str, log: Path) -> None:
    port = free_port()
    proc = spawn(
        ["serve", "--config", str(CONFIG), "--port", str(port)],
        database_url=db,
        env={"THREAD_SWEEP_SECONDS": "1"},
        log=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc)
        client = get_client(url=url, api_key=None, timeout=args.timeout)
        thread_id = str((await client.threads.create())["thread_id"])
        started = time.perf_counter()
        for n in range(1, args.turns + 1):
            await turn(client, thread_id, n)
            if n % 100 == 0:
                print(f"  {n} turns", file=sys.stderr, flush=True)
        drove = time.perf_counter() - started
        before, before_rows = thread_bytes(db, thread_id), rows(db, thread_id)
        state_before = await client.threads.get_state(thread_id)

        await client.threads.update(thread_id, metadata={"checkpoint_keep_last": args.keep})
        values = await turn(client, thread_id, args.turns + 1)
        ended = time.perf_counter()
        while checkpoints(db, thread_id) > args.keep:
            if time.perf_counter() - ended > args.timeout:
                raise TimeoutError("the sweeper did not trim the thread")
            await asyncio.sleep(0.1)
        trimmed = time.perf_counter() - ended
        after, after_rows = thread_bytes(db, thread_id), rows(db, thread_id)

        state = await client.threads.get_state(thread_id)
        messages = state["values"]["messages"]  # type: ignore[index]
        history = await history_states(url, thread_id, args.timeout)
        more = await turn(client, thread_id, args.turns + 2)
        expected = 2 * (args.turns + 1)
        assert len(messages) == expected, len(messages)
        assert len(values["messages"]) == expected
        assert messages[: 2 * args.turns] == state_before["values"]["messages"]  # type: ignore[index]
        assert len(more["messages"]) == expected + 2
        await client.http.client.aclose()
    finally:
        proc.terminate()
        proc.wait(15)

    print(
        f"retention: graph {GRAPH!r}, one thread of {args.turns} turns "
        f"({drove:,.0f} s to drive), then checkpoint_keep_last={args.keep} and one more turn"
    )
    print(
        f"{'table':<20}{'bytes before':>14}{'bytes after':>14}{'rows before':>13}{'rows after':>12}"
    )
    for table in sorted(before[0]):
        print(
            f"{table:<20}{mb(before[0][table]):>14}{mb(after[0].get(table, 0)):>14}"
            f"{before_rows.get(table, 0):>13,}{after_rows.get(table, 0):>12,}"
        )
    total_before, total_after = sum(before[0].values()), sum(after[0].values())
    print(f"{'all':<20}{mb(total_before):>14}{mb(total_after):>14}{before[1]:>13,}{after[1]:>12,}")
    print(
        f"freed {mb(total_before - total_after)} "
        f"({100 * (total_before - total_after) / max(total_before, 1):.1f}%); "
        f"the sweeper trimmed it {trimmed:.2f} s after the turn ended"
    )
    print(
        f"thread still works: state has {len(messages)} messages, history {history} states, "
        f"the next turn answered with {len(more['messages'])} messages"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--keep", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    with server_log() as log, scratch_database() as db:
        try:
            asyncio.run(drive(args, db, log))
        except BaseException:
            if log.exists():
                sys.stderr.write(log.read_text()[-4000:])
            raise


if __name__ == "__main__":
    main()
