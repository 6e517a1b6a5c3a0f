"""Long-thread benchmark (issue 15): what a thread costs as it grows, and the goals it must meet.

One thread of `benchmarks/chat.py` (`messages` under `add_messages`, one node; each turn a
~1 KB user message and a ~1 KB AI message) driven over HTTP with `runs.wait` from the
official SDK, Trellis on its own scratch database. At each checkpoint (50 / 300 / 1,000
turns; `--quick`: 20 / 60) it prints:

- the thread's Postgres bytes: every table with a `thread_id` column, the sum of
  `pg_column_size` over the thread's rows (live rows only; dead tuples are not counted),
  with `checkpoint_blobs`, `checkpoints`, `checkpoint_writes`, `runs` and `threads` apart;
- Redis bytes: `MEMORY USAGE` of every key naming one of the thread's runs (or the thread);
- the payload the turns added (the JSON bytes of the messages themselves);
- turn latency (median of the last 20 turns);
- `POST /threads/{id}/history` at limit 10 and 1,000: latency, body bytes, states returned,
  and the server's RSS growth during the limit=1,000 read;
- with `--walk`, every checkpoint read page by page (limit 1,000, continuing `before` the
  last), with the server's RSS growth over the whole walk;
- at the last checkpoint, the latency of deleting the thread and what it left behind.

The same turns then run in-process through the stock `AsyncPostgresSaver` (its own scratch
database) for its bytes and turn latency, and the floor is measured: `JsonPlusSerializer`
decoding the state at N turns plus encoding it as JSON for the wire, the work a turn cannot
avoid. Last come PASS/FAIL lines for goals 1, 4, 5 and 6 of the issue.

Loopback only; every loop is bounded: a request that takes longer than `--timeout`
fails the benchmark, and a history read that grows the server by more than `--rss-cap-mb`
is stopped by killing the server (reported as such), which then restarts on the same data.

    uv run python -m benchmarks.long_thread [--quick] [--turns 50,300,1000] [--walk]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psycopg
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph_sdk import get_client
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from benchmarks.chat import builder, filler, reply
from server.core.encoding import dumps
from tests.support.servers import free_port, scratch_database, spawn, wait_ready

CONFIG = Path(__file__).resolve().parent / "langgraph.json"
GRAPH = "chat"
FULL = (50, 300, 1000)
QUICK = (20, 60)
BROKEN_OUT = ("checkpoint_blobs", "checkpoints", "checkpoint_writes", "runs", "threads")
MB = 1024 * 1024


def user_text(turn: int) -> str:
    """The ~1 KB user message of a turn."""
    return filler(f"user:{turn}")


@dataclass
class HistoryRead:
    """One `POST /history` call."""

    seconds: float = 0.0
    body_bytes: int = 0
    states: int = 0
    next_before: str | None = None
    pages: int = 0
    rss_growth: int = 0
    killed: bool = False
    error: str | None = None


@dataclass
class Mark:
    """Everything measured at one checkpoint of turns."""

    turns: int
    tables: dict[str, int] = field(default_factory=dict)
    redis_bytes: int = 0
    redis_keys: int = 0
    payload: int = 0
    turn_ms: float = 0.0
    history10: HistoryRead = field(default_factory=HistoryRead)
    history1000: HistoryRead = field(default_factory=HistoryRead)
    history_all: HistoryRead | None = None
    delete_seconds: float | None = None
    left_rows: int | None = None
    left_keys: int | None = None
    stock_bytes: int = 0
    stock_turn_ms: float = 0.0
    floor_ms: float = 0.0

    @property
    def pg_bytes(self) -> int:
        return sum(self.tables.values())


# -- measuring ---------------------------------------------------------------------------------


def thread_tables(conn: psycopg.Connection) -> list[str]:
    """Every table of the public schema with a `thread_id` column."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND column_name = 'thread_id' ORDER BY table_name"
    ).fetchall()
    return [row[0] for row in rows]


def thread_bytes(url: str, thread_id: str) -> tuple[dict[str, int], int]:
    """Per table, the `pg_column_size` of the thread's rows; and how many rows there are."""
    sizes: dict[str, int] = {}
    rows = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for table in thread_tables(conn):
            size, count = conn.execute(
                f'SELECT coalesce(sum(pg_column_size(t.*)), 0), count(*) FROM "{table}" t'
                " WHERE t.thread_id::text = %s",
                (thread_id,),
            ).fetchone() or (0, 0)
            sizes[table] = int(size)
            rows += int(count)
    return sizes, rows


def run_ids(url: str, thread_id: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT run_id::text FROM runs WHERE thread_id::text = %s", (thread_id,)
        ).fetchall()
    return {row[0] for row in rows}


async def redis_bytes(redis: Redis, names: set[str]) -> tuple[int, int]:
    """`MEMORY USAGE` summed over the keys one of whose `:`-parts is in `names`; and their count."""
    total = keys = 0
    async for key in redis.scan_iter(match="*", count=1000):
        text = key.decode() if isinstance(key, bytes) else str(key)
        if names.intersection(text.split(":")):
            total += int(await redis.memory_usage(key, samples=0) or 0)
            keys += 1
    return total, keys


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants (Linux `/proc`)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def message_bytes(messages: Sequence[object]) -> int:
    return sum(len(orjson.dumps(m)) for m in messages)


def floor_seconds(turns: int, repeat: int = 5) -> float:
    """Decoding the state at `turns` with `JsonPlusSerializer` plus encoding it for the wire."""
    messages: list[AnyMessage] = []
    for turn in range(1, turns + 1):
        text = user_text(turn)
        messages.append(HumanMessage(text, id=str(uuid.uuid4())))
        messages.append(AIMessage(reply(text, 2 * turn), id=str(uuid.uuid4())))
    serde = JsonPlusSerializer()
    stored = serde.dumps_typed(messages)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        dumps({"messages": serde.loads_typed(stored)})
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


# -- Trellis over HTTP -------------------------------------------------------------------------


class Server:
    """`trellis serve` on a scratch database; restartable on the same data."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.database_url = database_url
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        port = free_port()
        self.proc = spawn(
            ["serve", "--config", str(CONFIG), "--port", str(port)],
            database_url=self.database_url,
            log=self.log,
        )
        self.url = f"http://127.0.0.1:{port}"
        wait_ready(self.url, proc=self.proc)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


async def read_history(
    server: Server,
    thread_id: str,
    limit: int,
    *,
    deadline: float,
    rss_cap: int,
    walk: bool = False,
) -> HistoryRead:
    """`POST /history` with `limit`, watching the server's RSS; kills it past `rss_cap`.
    With `walk`, every page to the end of the history, each continuing `before` the last
    (`X-Next-Before`, else the last state of a full page), within `deadline` in all."""
    out = HistoryRead()
    idle = tree_rss(server.pid)
    peak = idle
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(server.pid))
            if peak - idle > rss_cap:
                out.killed = True
                server.stop(kill=True)
                return
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    try:
        body: dict[str, object] = {"limit": limit}
        async with httpx.AsyncClient(timeout=deadline) as http:
            while time.perf_counter() - started < deadline:
                response = await http.post(f"{server.url}/threads/{thread_id}/history", json=body)
                response.raise_for_status()
                states = response.json()
                out.pages += 1
                out.body_bytes += len(response.content)
                out.states += len(states)
                out.next_before = response.headers.get("x-next-before")
                if out.next_before is None and len(states) == limit:
                    out.next_before = states[-1]["checkpoint_id"]
                del states, response
                if not walk or out.next_before is None:
                    break
                body["before"] = out.next_before
            else:
                out.error = "deadline"
    except httpx.HTTPError as exc:
        out.error = type(exc).__name__
    out.seconds = time.perf_counter() - started
    done.set()
    await watcher
    out.rss_growth = peak - idle
    if out.killed:
        server.start()
    return out


async def drive_trellis(marks: list[Mark], args: argparse.Namespace, db: str, log: Path) -> None:
    server = Server(db, log)
    server.start()
    redis = Redis.from_url(args.redis_url)
    try:
        client = get_client(url=server.url, api_key=None, timeout=args.timeout)
        thread_id = (await client.threads.create())["thread_id"]
        latencies: list[float] = []
        payload = 0
        by_turns = {mark.turns: mark for mark in marks}
        for turn in range(1, marks[-1].turns + 1):
            started = time.perf_counter()
            values = await client.runs.wait(
                thread_id,
                GRAPH,
                input={"messages": [{"role": "user", "content": user_text(turn)}]},
            )
            latencies.append(time.perf_counter() - started)
            assert isinstance(values, dict), values
            payload += message_bytes(values["messages"][-2:])
            mark = by_turns.get(turn)
            if mark is None:
                continue
            mark.payload = payload
            mark.turn_ms = statistics.median(latencies[-20:]) * 1000
            mark.tables, _ = thread_bytes(db, thread_id)
            names = run_ids(db, thread_id) | {thread_id}
            mark.redis_bytes, mark.redis_keys = await redis_bytes(redis, names)
            url = server.url
            for limit in (10, 1000):
                read = await read_history(
                    server, thread_id, limit, deadline=args.timeout, rss_cap=args.rss_cap_mb * MB
                )
                setattr(mark, f"history{limit}", read)
            if args.walk:
                mark.history_all = await read_history(
                    server,
                    thread_id,
                    1000,
                    deadline=args.timeout,
                    rss_cap=args.rss_cap_mb * MB,
                    walk=True,
                )
            if server.url != url:  # restarted after a kill
                await client.http.client.aclose()
                client = get_client(url=server.url, api_key=None, timeout=args.timeout)
            print(f"  trellis: {turn} turns measured", file=sys.stderr, flush=True)
        last = marks[-1]
        names = run_ids(db, thread_id) | {thread_id}
        started = time.perf_counter()
        await client.threads.delete(thread_id)
        last.delete_seconds = time.perf_counter() - started
        _, last.left_rows = thread_bytes(db, thread_id)
        _, last.left_keys = await redis_bytes(redis, names)
        await client.http.client.aclose()
    finally:
        await redis.aclose()
        server.stop()


# -- the stock saver in-process ----------------------------------------------------------------


async def drive_stock(marks: list[Mark], db: str) -> None:
    async with AsyncConnectionPool(
        db,
        min_size=1,
        max_size=4,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        graph = builder.compile(checkpointer=saver)
        thread_id = str(uuid.uuid4())
        config = {"configurable": {"thread_id": thread_id}}
        latencies: list[float] = []
        by_turns = {mark.turns: mark for mark in marks}
        for turn in range(1, marks[-1].turns + 1):
            started = time.perf_counter()
            await graph.ainvoke(
                {"messages": [{"role": "user", "content": user_text(turn)}]},
                config,
                durability="sync",
            )
            latencies.append(time.perf_counter() - started)
            mark = by_turns.get(turn)
            if mark is not None:
                mark.stock_turn_ms = statistics.median(latencies[-20:]) * 1000
                mark.stock_bytes = sum(thread_bytes(db, thread_id)[0].values())
                print(f"  stock saver: {turn} turns measured", file=sys.stderr, flush=True)


# -- report ------------------------------------------------------------------------------------


def mb(n: int | float) -> str:
    return f"{n / MB:,.2f} MB"


def history_cell(read: HistoryRead) -> str:
    if read.killed:
        return f"killed at +{read.rss_growth / MB:,.0f} MB RSS after {read.seconds:.1f} s"
    if read.error:
        return f"{read.error} after {read.seconds:.1f} s"
    more = " +more" if read.next_before else ""
    pages = f", {read.pages} pages" if read.pages > 1 else ""
    return (
        f"{read.seconds * 1000:,.0f} ms ({mb(read.body_bytes)}, {read.states} states{more}{pages})"
    )


def delete_cell(mark: Mark) -> str:
    if mark.delete_seconds is None:
        return "-"
    left = f"{mark.left_rows} rows, {mark.left_keys} keys left"
    return f"{mark.delete_seconds * 1000:,.0f} ms, {left}"


def table(marks: list[Mark]) -> str:
    rows: list[tuple[str, list[str]]] = [
        ("Postgres bytes for the thread", [mb(m.pg_bytes) for m in marks]),
    ]
    for name in BROKEN_OUT:
        rows.append((f"  of which {name}", [mb(m.tables.get(name, 0)) for m in marks]))
    others = [sum(v for k, v in m.tables.items() if k not in BROKEN_OUT) for m in marks]
    rows += [
        ("  of which other tables", [mb(n) for n in others]),
        (
            "Redis bytes (keys of its runs)",
            [f"{mb(m.redis_bytes)} ({m.redis_keys} keys)" for m in marks],
        ),
        ("payload added", [mb(m.payload) for m in marks]),
        ("turn latency, median of last 20", [f"{m.turn_ms:,.1f} ms" for m in marks]),
        ("POST /history limit 10", [history_cell(m.history10) for m in marks]),
        ("POST /history limit 1000", [history_cell(m.history1000) for m in marks]),
        ("server RSS growth, limit 1000", [mb(m.history1000.rss_growth) for m in marks]),
    ]
    if any(m.history_all is not None for m in marks):
        walks = [m.history_all or HistoryRead() for m in marks]
        rows += [
            ("every checkpoint, page by page", [history_cell(w) for w in walks]),
            ("server RSS growth, every page", [mb(w.rss_growth) for w in walks]),
        ]
    rows += [
        ("delete thread", [delete_cell(m) for m in marks]),
        ("stock AsyncPostgresSaver bytes", [mb(m.stock_bytes) for m in marks]),
        ("stock saver turn latency", [f"{m.stock_turn_ms:,.1f} ms" for m in marks]),
        ("floor (decode + JSON encode)", [f"{m.floor_ms:,.1f} ms" for m in marks]),
    ]
    widths = [max(len(cells[i]) for _, cells in rows) for i in range(len(marks))]
    widths = [max(w, len(f"{m.turns} turns")) for w, m in zip(widths, marks, strict=True)]
    label = max(len(name) for name, _ in rows)
    lines = [
        " | ".join(
            ["after N turns".ljust(label)]
            + [f"{m.turns} turns".rjust(w) for m, w in zip(marks, widths, strict=True)]
        )
    ]
    for name, cells in rows:
        lines.append(
            " | ".join(
                [name.ljust(label)] + [c.rjust(w) for c, w in zip(cells, widths, strict=True)]
            )
        )
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def goals(marks: list[Mark]) -> list[str]:
    """The issue's goals 1, 4, 5 and 6, judged at the last checkpoint (4 at every later one)."""
    base, last = marks[0], marks[-1]
    lines = [
        f"goal 1 {verdict(last.pg_bytes <= 5 * last.payload)}: at {last.turns} turns the"
        f" thread's Postgres bytes ({mb(last.pg_bytes)}) <= 5x the payload added"
        f" ({mb(5 * last.payload)})",
    ]
    for mark in marks[1:]:
        allowed = base.turn_ms + 2 * (mark.floor_ms - base.floor_ms)
        lines.append(
            f"goal 4 {verdict(mark.turn_ms <= allowed)}: turn latency at {mark.turns} turns"
            f" ({mark.turn_ms:,.1f} ms) <= latency at {base.turns} + 2x (floor({mark.turns})"
            f" - floor({base.turns})) = {allowed:,.1f} ms"
        )
    stock_ok = last.turn_ms <= 0.7 * last.stock_turn_ms
    lines.append(
        f"goal 4 {verdict(stock_ok) if last.stock_turn_ms else 'SKIP'}: at {last.turns} turns"
        f" Trellis' turn ({last.turn_ms:,.1f} ms) <= 0.7x the stock in-process saver's"
        f" ({0.7 * last.stock_turn_ms:,.1f} ms)"
    )
    read = last.history1000
    answered = not read.killed and read.error is None
    lines.append(
        f"goal 5 {verdict(answered and read.rss_growth <= 300 * MB)}: server RSS stays under"
        f" its idle size + 300 MB during history limit=1000 at {last.turns} turns"
        f" (grew {mb(read.rss_growth)})"
    )
    lines.append(
        f"goal 5 {verdict(answered and read.seconds <= 2.0)}: a history page of limit=1000"
        f" answers in <= 2 s ({read.seconds:,.2f} s)"
    )
    deleted = last.delete_seconds is not None and last.delete_seconds <= 1.0
    clean = last.left_rows == 0 and last.left_keys == 0
    lines.append(
        f"goal 6 {verdict(deleted and clean)}: deleting the {last.turns}-turn thread takes"
        f" <= 1 s ({(last.delete_seconds or 0) * 1000:,.0f} ms) and leaves no row"
        f" ({last.left_rows}) and no Redis key ({last.left_keys})"
    )
    return lines


@contextmanager
def server_log() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="trellis-long-thread-") as tmp:
        yield Path(tmp) / "server.log"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"turns {QUICK} instead of {FULL}")
    parser.add_argument("--turns", help="comma-separated checkpoints, e.g. 50,300,1000")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--rss-cap-mb", type=int, default=3000, help="kill the server past it")
    parser.add_argument(
        "--walk", action="store_true", help="also read every checkpoint, page by page"
    )
    parser.add_argument("--skip-stock", action="store_true", help="not the stock saver")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    points = QUICK if args.quick else FULL
    if args.turns:
        points = tuple(sorted(int(n) for n in args.turns.split(",")))
    marks = [Mark(turns=n) for n in points]
    started = time.perf_counter()
    with server_log() as log, scratch_database() as db:
        try:
            asyncio.run(drive_trellis(marks, args, db, log))
        except BaseException:
            if log.exists():
                sys.stderr.write(log.read_text()[-4000:])
            raise
    if not args.skip_stock:
        with scratch_database() as db:
            asyncio.run(drive_stock(marks, db))
    for mark in marks:
        mark.floor_ms = floor_seconds(mark.turns) * 1000
    print(
        f"long thread: graph {GRAPH!r} (messages + add_messages, one node), runs.wait, one thread"
    )
    print(table(marks))
    for line in goals(marks):
        print(line)
    print(f"({time.perf_counter() - started:,.0f} s in all)")


if __name__ == "__main__":
    main()
