"""Postgres restarts and outages: runs resume instead of failing, and service returns in ~1 s.

A cluster of the test's own (so it can be restarted: `pg_trellis`) serves two API processes
and two workers. Runs of a 10-step graph that touches no database itself (everything it
writes goes through Trellis' checkpointer) are streamed, alternating between the APIs,
while Postgres restarts (`pg_ctl restart -m fast`: every backend terminated) or stays down
for 20 s; each run must end `success`, no stream may carry an `error` event or be cut before
the run's last step, and a step published twice must follow a new attempt marker. After an
outage or three quick restarts, queued runs are claimed within 2 s of Postgres' return;
while it is down the API answers 503 with `Retry-After` on a connection that stays open, and
never 500.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.faults.checks import assert_repeats_are_marked
from tests.faults.harness import SSE, Cluster, PrivatePostgres, sse_events

TICKS = [f"t{i}" for i in range(1, 11)]
RUNS = 20
DELAY = 0.25
"""Ten steps of 0.25 s: a run takes ~2.5 s, so the restart lands mid-run."""
OUTAGE = 20.0
"""How long Postgres stays down under 20 streamed runs."""
DUE = 1.0
"""Runs created just before the last of three quick restarts are due this much later: about
when Postgres is back, so the claim loop must have come back from the restart to take them."""


@pytest.fixture
def trellis(pg_trellis: tuple[Cluster, PrivatePostgres]) -> Cluster:
    """The cluster, under the name whose logs conftest prints when a test fails."""
    return pg_trellis[0]


def _run_rows(c: Cluster, thread_ids: list[str]) -> list[tuple[str, str, int]]:
    return [
        (str(run_id), status, attempt)
        for run_id, status, attempt in c.sql(
            "SELECT run_id, status, attempt FROM runs WHERE thread_id::text = ANY(%s)",
            (thread_ids,),
        )
    ]


async def _stream_run(http: httpx.AsyncClient, thread_id: str) -> list[SSE]:
    """Create a run and follow its stream to the end (or until the server cuts it)."""
    body = {"assistant_id": "ticks", "input": {"delay": DELAY}, "stream_mode": ["updates"]}
    events: list[SSE] = []
    try:
        async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as r:
            assert r.status_code == 200, await r.aread()
            async for event in sse_events(r):
                events.append(event)
    except httpx.HTTPError as exc:  # a cut stream: recorded, judged by the caller
        events.append(SSE(event="__cut__", data=repr(exc), id=None))
    return events


async def _streamed_runs_through(
    c: Cluster, fault: Callable[[], Awaitable[float]]
) -> tuple[list[str], list[list[SSE]], float]:
    """RUNS streamed runs of `ticks`, alternating between the API processes; `fault()` once
    half of them have checkpointed step 2. The threads, each stream's events, and the
    wall-clock time `fault()` returned (Postgres back)."""
    clients = [httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(90.0)) for url in c.urls]
    try:
        threads = []
        for i in range(RUNS):
            created = await clients[i % len(clients)].post("/threads", json={})
            threads.append(str(created.json()["thread_id"]))
        streams = [
            asyncio.create_task(_stream_run(clients[i % len(clients)], t))
            for i, t in enumerate(threads)
        ]
        deadline = time.monotonic() + 20  # bounded wait for the runs to be well under way
        while time.monotonic() < deadline:
            rows = c.sql(
                "SELECT count(DISTINCT thread_id) FROM checkpoints "
                "WHERE thread_id = ANY(%s) AND (metadata->>'step')::int >= 2",
                (threads,),
            )
            if rows[0][0] >= RUNS // 2:
                break
            await asyncio.sleep(0.05)
        up = await fault()
        results = await asyncio.wait_for(asyncio.gather(*streams), 60)
    finally:
        for client in clients:
            await client.aclose()
    return threads, results, up


def _update_node(event: dict[str, Any]) -> Any:
    return (event["event"], *json.loads(event["data"]))


def _judge(c: Cluster, threads: list[str], results: list[list[SSE]]) -> tuple[list[int], int, int]:
    """Every run succeeded with its whole log, every stream ended after the run's last step
    with no `error` event, repeats only after a new attempt marker. Returns the runs'
    attempts, the `error` events and the repeated updates (for the report)."""
    rows = _run_rows(c, threads)
    statuses = [status for _, status, _ in rows]
    attempts = sorted(attempt for _, _, attempt in rows)
    errors = [e for events in results for e in events if e["event"] == "error"]
    cut = [events[-1] for events in results if not events or events[-1]["event"] == "__cut__"]
    assert len(rows) == RUNS
    assert statuses == ["success"] * RUNS, rows
    assert errors == [], errors[:3]
    assert cut == [], cut[:3]
    repeated = 0
    for thread_id, events in zip(threads, results, strict=True):
        state = c.sql(
            "SELECT status, values->'log' FROM threads WHERE thread_id::text = %s", (thread_id,)
        )
        assert state == [("idle", TICKS)], (thread_id, state)
        updates = [next(iter(json.loads(e["data"]))) for e in events if e["event"] == "updates"]
        # The stream ended because the run did: its last event is the last step's update.
        assert updates[-1:] == [TICKS[-1]], (thread_id, updates)
        assert sorted(set(updates)) == sorted(TICKS), (thread_id, updates)
        repeated += assert_repeats_are_marked(events, _update_node)
    return attempts, len(errors), repeated


async def test_runs_in_flight_survive_a_fast_restart(
    pg_trellis: tuple[Cluster, PrivatePostgres], trellis: Cluster
) -> None:
    c, pg = pg_trellis
    took: list[float] = []

    async def restart() -> float:
        began = time.time()
        up = await asyncio.to_thread(pg.restart, "fast")
        took.append(up - began)
        return up

    threads, results, up = await _streamed_runs_through(c, restart)
    finished = time.time()
    attempts, errors, repeated = _judge(c, threads, results)
    # The restart really landed mid-run: every pooled connection of every process died under
    # runs that went on afterwards (whether a run needs a second attempt depends on whether a
    # write of its was in flight at that instant: most resume on a fresh connection).
    (spanning,) = c.sql(
        "SELECT count(*) FROM runs WHERE thread_id::text = ANY(%s) AND ended_at > to_timestamp(%s)",
        (threads, up),
    )[0]
    print(
        f"\npg restart -m fast took {took[0]:.2f}s under {spanning} running runs; {RUNS}/{RUNS} "
        f"runs succeeded, attempts {attempts}; {errors} error events; 0 streams cut; "
        f"{repeated} updates re-published after an attempt marker; all streams done "
        f"{finished - up:.1f}s after Postgres was back"
    )
    assert spanning >= RUNS // 2, spanning


async def test_streams_and_runs_survive_a_20s_outage(
    pg_trellis: tuple[Cluster, PrivatePostgres], trellis: Cluster
) -> None:
    c, pg = pg_trellis

    async def outage() -> float:
        await asyncio.to_thread(pg.stop, "fast")
        await asyncio.sleep(OUTAGE)
        return await asyncio.to_thread(pg.start)

    threads, results, up = await _streamed_runs_through(c, outage)
    finished = time.time()
    attempts, errors, repeated = _judge(c, threads, results)
    print(
        f"\nPostgres down {OUTAGE:.0f}s: {RUNS}/{RUNS} runs succeeded, attempts {attempts}; "
        f"{errors} error events; 0 streams cut; {repeated} updates re-published after an "
        f"attempt marker; all streams done {finished - up:.1f}s after Postgres was back"
    )
    assert max(attempts) >= 2, attempts


async def test_claims_resume_within_two_seconds_of_postgres_returning(
    pg_trellis: tuple[Cluster, PrivatePostgres], trellis: Cluster
) -> None:
    c, pg = pg_trellis
    async with httpx.AsyncClient(base_url=c.url, timeout=httpx.Timeout(30.0)) as http:
        threads = [
            str((await http.post("/threads", json={})).json()["thread_id"]) for _ in range(4)
        ]
        for thread_id in threads:
            created = await http.post(
                f"/threads/{thread_id}/runs",
                json={"assistant_id": "ticks", "input": {"delay": 0.01}, "after_seconds": 1},
            )
            assert created.status_code == 200, created.text
        # Down before the runs are due, up after: every worker connection is dead by then,
        # and the pools have been refused for a while (their reconnect backoff grows).
        await asyncio.to_thread(pg.stop, "fast")
        await asyncio.sleep(3.0)
        up = await asyncio.to_thread(pg.start)
        deadline = time.monotonic() + 20
        started: list[float] = []
        while time.monotonic() < deadline:
            rows = c.sql(
                "SELECT extract(epoch FROM started_at)::float8 FROM runs "
                "WHERE thread_id::text = ANY(%s) AND started_at IS NOT NULL",
                (threads,),
            )
            started = [row[0] for row in rows]
            if len(started) == len(threads):
                break
            await asyncio.sleep(0.05)
        resumed = [t - up for t in started]
        print(f"\nclaims after Postgres returned: {', '.join(f'{r:.2f}s' for r in resumed)}")
        assert len(started) == len(threads)
        assert max(resumed) <= 2.0, resumed
        for thread_id in threads:
            joined = await http.get(f"/threads/{thread_id}/runs")
            (run,) = joined.json()
            out = await http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
            assert out.json()["log"] == TICKS


def _post_thread(conn: http.client.HTTPConnection) -> tuple[int, dict[str, str], Any]:
    conn.request("POST", "/threads", body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_the_api_answers_503_while_postgres_is_down_then_200(
    pg_trellis: tuple[Cluster, PrivatePostgres], trellis: Cluster
) -> None:
    c, pg = pg_trellis
    where = urlsplit(c.url)
    assert where.hostname is not None
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        assert _post_thread(conn)[0] == 200
        assert conn.sock is not None
        local = conn.sock.getsockname()  # the keep-alive connection every request reuses
        pg.stop("fast")
        try:
            answers = []
            for _ in range(3):
                began = time.monotonic()
                answers.append((*_post_thread(conn), time.monotonic() - began))
                assert conn.sock is not None, "the server closed the connection"
                assert conn.sock.getsockname() == local
        finally:
            up = pg.start()
        for status, headers, body, took in answers:
            assert status == 503, (status, body)
            assert headers["retry-after"] == "1"
            assert headers["content-type"] == "application/json"
            assert body == {
                "detail": "the database is unavailable; retry shortly",
                "code": "database_unavailable",
            }
            assert took < 5.0, took
        recovered = None
        while time.time() - up < 10:
            status, _, body = _post_thread(conn)
            assert conn.sock is not None
            assert conn.sock.getsockname() == local
            if status == 200:
                recovered = time.time() - up
                break
            assert status == 503, body
            time.sleep(0.1)
        print(
            f"\n503 answers took {', '.join(f'{a[3]:.2f}s' for a in answers)}; "
            f"200 again {recovered}s after Postgres returned, on the same connection"
        )
        assert recovered is not None
        assert recovered <= 2.0
    finally:
        conn.close()


def _request(
    conn: http.client.HTTPConnection, path: str, body: dict[str, Any] | None
) -> tuple[int, dict[str, str], Any]:
    """POST `body` to `path` (GET when there is none); the status, headers and JSON answer."""
    if body is None:
        conn.request("GET", path)
    else:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", path, body=json.dumps(body), headers=headers)
    response = conn.getresponse()
    payload = json.loads(response.read())
    return response.status, {k.lower(): v for k, v in response.getheaders()}, payload


def test_three_short_restarts_without_load(
    pg_trellis: tuple[Cluster, PrivatePostgres], trellis: Cluster
) -> None:
    """Three `pg_ctl restart -m fast` a second apart while a client keeps creating threads and
    runs, and joining them, on one keep-alive connection, retrying a 503 as told: never a
    500, the connection stays open, every run succeeds (its join answers its output), and
    runs that come due as Postgres returns from the last restart are claimed within 2 s."""
    c, pg = pg_trellis
    where = urlsplit(c.url)
    assert where.hostname is not None
    restarts: list[tuple[float, float]] = []
    due: list[str] = []

    def restarter() -> None:
        side = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        try:
            for i in range(3):
                time.sleep(1.0)
                if i == 2:  # runs that come due about when Postgres is back from the last one
                    threads = [_request(side, "/threads", {})[2]["thread_id"] for _ in range(4)]
                    for thread_id in threads:
                        body = {"assistant_id": "ticks", "input": {"delay": 0.01}}
                        status, _, run = _request(
                            side, f"/threads/{thread_id}/runs", {**body, "after_seconds": DUE}
                        )
                        assert status == 200, run
                        due.append(str(run["run_id"]))
                began = time.time()
                restarts.append((began, pg.restart("fast")))
        finally:
            side.close()

    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    answers: list[tuple[int, str | None]] = []
    created: list[str] = []
    joins: list[float] = []
    background = threading.Thread(target=restarter)

    def post(path: str, body: dict[str, Any] | None) -> Any:
        """The SDK user's loop: a 503 is retried (sooner than its Retry-After, to probe)."""
        for _ in range(200):  # bounded: 20 s
            status, headers, payload = _request(conn, path, body)
            answers.append((status, headers.get("retry-after")))
            assert conn.sock is not None, "the server closed the keep-alive connection"
            assert conn.sock.getsockname() == local
            if status != 503:
                assert status == 200, (status, payload)
                return payload
            assert headers["retry-after"] == "1", headers
            assert payload["code"] == "database_unavailable", payload
            time.sleep(0.1)
        raise AssertionError(f"{path} answered 503 for 20 s")

    try:
        assert _request(conn, "/threads", {})[0] == 200
        assert conn.sock is not None
        local = conn.sock.getsockname()
        background.start()
        while background.is_alive() or time.time() < restarts[-1][1] + 2.0:
            thread = post("/threads", {})
            run = post(
                f"/threads/{thread['thread_id']}/runs",
                {"assistant_id": "ticks", "input": {"delay": 0.01}},
            )
            created.append(str(run["run_id"]))
            asked = time.monotonic()
            joined = post(f"/threads/{thread['thread_id']}/runs/{run['run_id']}/join", None)
            joins.append(time.monotonic() - asked)
            assert joined["log"] == TICKS, joined
            time.sleep(0.05)
    finally:
        background.join(60)
        conn.close()
    assert len(restarts) == 3
    up = restarts[-1][1]

    def settled() -> list[tuple[str, str, float | None, float]]:
        rows = c.sql(
            "SELECT run_id::text, status, extract(epoch FROM started_at)::float8, "
            "extract(epoch FROM created_at)::float8 FROM runs WHERE run_id::text = ANY(%s)",
            (created + due,),
        )
        return [(str(r[0]), str(r[1]), r[2], float(r[3])) for r in rows]

    deadline = time.monotonic() + 30
    rows = settled()
    while time.monotonic() < deadline and any(row[1] != "success" for row in rows):
        time.sleep(0.2)
        rows = settled()
    statuses = [row[1] for row in rows]
    assert len(rows) == len(created) + len(due)
    assert statuses == ["success"] * len(rows), [r for r in rows if r[1] != "success"]
    claims = []
    for run_id, _, started, created_at in rows:
        if run_id in due:
            assert started is not None
            # Not claimed before the restart: the claim loop had to come back from it first.
            assert started >= restarts[-1][0], (started, restarts[-1])
            claims.append(started - max(up, created_at + DUE))
    assert len(claims) == len(due)
    codes = [status for status, _ in answers]
    print(
        f"\nthree restarts took {', '.join(f'{b - a:.2f}s' for a, b in restarts)}; "
        f"{len(created)} runs created and joined through them on one keep-alive connection: "
        f"{codes.count(200)} x 200, {codes.count(503)} x 503 (Retry-After 1), 0 x 500; "
        f"runs due around the last restart claimed {', '.join(f'{t:.2f}s' for t in claims)} "
        f"after Postgres returned (or they came due, if later); slowest join {max(joins):.2f}s"
    )
    assert set(codes) <= {200, 503}
    # A run that ended while the API's listener was away (its NOTIFY lost) is still answered
    # at once: the listener's reconnection wakes the waiters (it used to take 30 s).
    assert max(joins) <= 5.0, joins
    assert max(claims) <= 2.0, claims
