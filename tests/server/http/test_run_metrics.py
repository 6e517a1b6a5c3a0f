"""`GET /metrics` after known run work: node steps, model calls, time to first event, fenced
writes, cancellations, Redis commands; `METRICS_ENABLED=false`; run log lines' context.

The graphs are served under ids of their own (`telemetry_*`), so no other test moves the
series asserted here (the suite shares one metrics registry per process).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest

from server.core.logging import fields
from server.core.settings import Settings
from tests.server.http.test_metrics import Samples, parse, scrape, value, wait_run
from tests.support.security import security_settings, trellis
from tests.support.servers import ROOT, TEST_GRAPHS, free_port

_SUPPORT = ROOT / "tests" / "support" / "graphs"


@pytest.fixture(scope="module")
def telemetry_graphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("telemetry") / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(TEST_GRAPHS.parent)],
                "graphs": {
                    "telemetry_chat": f"{_SUPPORT / 'telemetry.py'}:graph",
                    "telemetry_slow": f"{_SUPPORT / 'extra.py'}:slow",
                },
            }
        )
    )
    return config


@pytest.fixture(scope="module")
def telemetry_settings(security_db: str, telemetry_graphs: Path) -> Settings:
    return security_settings(security_db, graphs_config=telemetry_graphs, rate_limit_enabled=False)


@pytest.fixture(scope="module")
async def served(telemetry_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        trellis(telemetry_settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield http


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def wait_for(http: httpx.AsyncClient, thread_id: str, run_id: str, status: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        run = (await http.get(f"/threads/{thread_id}/runs/{run_id}")).json()
        if run["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"run {run_id} never became {status}")


async def test_node_steps_model_calls_and_first_events(served: httpx.AsyncClient) -> None:
    http = served
    before = await scrape(http)
    for text in ("hi", "hello", "boom"):
        thread = (await http.post("/threads", json={})).json()
        answer = await http.post(
            f"/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "telemetry_chat", "input": {"text": text}},
        )
        assert answer.status_code == 200, answer.text
    after = await scrape(http)

    node = {"graph_id": "telemetry_chat", "node": "answer"}
    assert delta(before, after, "trellis_node_duration_seconds_count", **node, outcome="ok") == 2
    assert delta(before, after, "trellis_node_duration_seconds_count", **node, outcome="error") == 1
    model = {"provider": "scripted", "model": "scripted-1", "prompt_version": "2"}
    assert delta(before, after, "trellis_model_calls_total", **model, outcome="ok") == 2
    assert delta(before, after, "trellis_model_calls_total", **model, outcome="error") == 1
    assert delta(before, after, "trellis_model_call_duration_seconds_count", **model) == 3
    assert delta(before, after, "trellis_model_tokens_total", **model, direction="in") == 14
    assert delta(before, after, "trellis_model_tokens_total", **model, direction="out") == 6
    first = "trellis_run_first_event_seconds_count"
    assert delta(before, after, first, graph_id="telemetry_chat") == 3
    assert delta(before, after, "trellis_runs_finished_total", graph_id="telemetry_chat",
                 status="error") == 1  # fmt: skip


async def test_redis_commands_are_timed_by_name(served: httpx.AsyncClient) -> None:
    http = served
    before = await scrape(http)
    thread = (await http.post("/threads", json={})).json()
    async with http.stream(
        "POST",
        f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "telemetry_chat", "input": {"text": "hi"}, "stream_resumable": True},
    ) as response:
        body = "".join([chunk async for chunk in response.aiter_text()])
    assert "event: values" in body
    after = await scrape(http)
    timed = {
        labels: count - before.get((name, labels), 0)
        for (name, labels), count in after.items()
        if name == "trellis_redis_command_duration_seconds_count"
    }
    moved = {dict(labels)["command"] for labels, count in timed.items() if count > 0}
    # A resumable stream is read back from its Redis stream (XREAD or XRANGE).
    assert moved & {"XREAD", "XRANGE"}, moved
    assert all(command.isupper() and len(command) <= 32 for command in moved)


async def test_dependencies_up_are_checked_on_each_scrape(
    served: httpx.AsyncClient, telemetry_settings: Settings
) -> None:
    samples = await scrape(served)
    observability = (await served.get("/info")).json()["trellis"]["observability"]
    assert observability == {"metrics": True, "tracing": "none"}
    assert value(samples, "trellis_redis_up") == 1
    assert ("trellis_qdrant_up", ()) not in samples  # no QDRANT_URL: not used, not reported
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    broken = telemetry_settings.model_copy(update={"qdrant_url": closed})
    async with trellis(broken) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        samples = await scrape(http)
    assert value(samples, "trellis_qdrant_up") == 0
    assert ("trellis_qdrant_up", ()) in samples


async def test_a_write_after_the_lease_moved_on_is_counted_as_fenced(
    served: httpx.AsyncClient, telemetry_settings: Settings, tmp_path: Path
) -> None:
    http = served
    before = await scrape(http)
    trace = tmp_path / "trace"
    thread = (await http.post("/threads", json={})).json()
    created = await http.post(
        f"/threads/{thread['thread_id']}/runs",
        json={
            "assistant_id": "telemetry_slow",
            "input": {"delay": 0.4, "trace": str(trace)},
            "durability": "sync",
        },
    )
    run_id = created.json()["run_id"]
    deadline = time.monotonic() + 10
    while not (trace.exists() and trace.read_text()):
        assert time.monotonic() < deadline, "the run never started its first step"
        await asyncio.sleep(0.02)
    # Another worker took the lease over (a new epoch): this worker's next checkpoint
    # write is refused. Its heartbeat still renews (same owner) until it lets go.
    async with await psycopg.AsyncConnection.connect(
        telemetry_settings.psycopg_url, autocommit=True
    ) as conn:
        await conn.execute(
            "UPDATE runs SET lease_epoch = lease_epoch + 1 WHERE run_id = %s", (run_id,)
        )
    # The lease lapses once the fenced worker lets go; a sweep hands the run to a worker.
    assert await wait_run(http, thread["thread_id"], run_id) == "success"
    after = await scrape(http)
    assert delta(before, after, "trellis_run_fenced_writes_total", write="checkpoint") == 1
    assert delta(before, after, "trellis_run_fenced_writes_total", write="outcome") == 0


async def test_cancellations_by_action_and_state(served: httpx.AsyncClient) -> None:
    http = served
    before = await scrape(http)
    running = (await http.post("/threads", json={})).json()
    run = (
        await http.post(
            f"/threads/{running['thread_id']}/runs",
            json={"assistant_id": "telemetry_slow", "input": {"delay": 1.0}},
        )
    ).json()
    await wait_for(http, running["thread_id"], run["run_id"], "running")
    cancelled = await http.post(
        f"/threads/{running['thread_id']}/runs/{run['run_id']}/cancel?wait=1&action=interrupt"
    )
    assert cancelled.status_code in (200, 202, 204), cancelled.text
    pending = (await http.post("/threads", json={})).json()
    later = (
        await http.post(
            f"/threads/{pending['thread_id']}/runs",
            json={"assistant_id": "telemetry_slow", "input": {}, "after_seconds": 3600},
        )
    ).json()
    cancelled = await http.post(
        f"/threads/{pending['thread_id']}/runs/{later['run_id']}/cancel?action=rollback"
    )
    assert cancelled.status_code in (200, 202, 204), cancelled.text
    after = await scrape(http)
    cancellations = "trellis_run_cancellations_total"
    assert delta(before, after, cancellations, action="interrupt", state="running") == 1
    assert delta(before, after, cancellations, action="rollback", state="pending") == 1
    assert delta(before, after, cancellations, action="interrupt", state="pending") == 0


async def test_every_log_line_of_a_run_names_the_run_and_its_request(
    served: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    http = served
    thread = (await http.post("/threads", json={})).json()
    with caplog.at_level(logging.INFO):
        answer = await http.post(
            f"/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "telemetry_chat", "input": {"text": "hi"}},
            headers={"x-request-id": "req-telemetry-1"},
        )
        assert answer.status_code == 200, answer.text
    run_id = answer.headers["content-location"].rsplit("/", 1)[-1]
    of_run = [fields(r) for r in caplog.records if fields(r).get("run_id") == run_id]
    messages = {r.getMessage() for r in caplog.records if fields(r).get("run_id") == run_id}
    # The graph's own line (it knows nothing of Trellis) and the executor's.
    assert {"answering", "run started", "run finished"} <= messages
    for line in of_run:
        assert line["thread_id"] == thread["thread_id"]
        assert line["assistant_id"]
        assert line["request_id"] == "req-telemetry-1"


async def test_metrics_disabled_answers_404_and_measures_no_run(
    telemetry_settings: Settings,
) -> None:
    off = telemetry_settings.model_copy(update={"metrics_enabled": False})
    on = (await _scrape_registry()).copy()
    async with trellis(off) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 404
        assert refused.json()["detail"] == "metrics are disabled"
        observability = (await http.get("/info")).json()["trellis"]["observability"]
        assert observability == {"metrics": False, "tracing": "none"}
        thread = (await http.post("/threads", json={})).json()
        answer = await http.post(
            f"/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "telemetry_chat", "input": {"text": "hi"}},
        )
        assert answer.status_code == 200, answer.text
    after = await _scrape_registry()
    node = {"graph_id": "telemetry_chat", "node": "answer", "outcome": "ok"}
    assert delta(on, after, "trellis_node_duration_seconds_count", **node) == 0
    model = {"provider": "scripted", "model": "scripted-1", "prompt_version": "2"}
    assert delta(on, after, "trellis_model_calls_total", **model, outcome="ok") == 0
    assert delta(on, after, "trellis_run_first_event_seconds_count", graph_id="telemetry_chat") == 0
    http_count = "trellis_http_request_duration_seconds_count"
    wait = {"method": "POST", "route": "/threads/{thread_id}/runs/wait", "status": "200"}
    assert delta(on, after, http_count, **wait) == 0
    # Counting runs stays on (a counter increment): the run was counted.
    assert delta(on, after, "trellis_runs_created_total", graph_id="telemetry_chat") == 1


async def _scrape_registry() -> Samples:
    """This process' registry as `/metrics` renders it (the server with metrics off has no
    `/metrics` to read, and shares the registry)."""
    from server.core.metrics import render

    return parse(render().decode())
