"""`GET /metrics`: counters that move by exactly the work done, bounded labels, and access.

The app here serves graph ids of its own (`metered_*`), so the counters it moves are not
moved by the rest of the suite, which shares the process and its metrics registry.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.core.settings import Settings
from server.http.app import create_app
from tests.support.security import create_key, security_settings, serve_app, trellis
from tests.support.servers import ROOT, TEST_GRAPHS, scratch_database

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

_GRAPHS = ROOT / "tests" / "support" / "graphs" / "simple.py"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by name and sorted labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter not moved yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def metered_graphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A langgraph.json serving the test graphs under ids no other test uses."""
    config = tmp_path_factory.mktemp("metered") / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(TEST_GRAPHS.parent)],
                "graphs": {
                    "metered_echo": f"{_GRAPHS}:echo",
                    "metered_approval": f"{_GRAPHS}:approval",
                },
            }
        )
    )
    return config


@pytest.fixture(scope="module")
def metered_settings(security_db: str, metered_graphs: Path) -> Settings:
    return security_settings(security_db, graphs_config=metered_graphs, rate_limit_enabled=False)


@pytest.fixture(scope="module")
async def metered(metered_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        trellis(metered_settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield http


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


async def wait_run(http: httpx.AsyncClient, thread_id: str, run_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = (await http.get(f"/threads/{thread_id}/runs/{run_id}")).json()
        if run["status"] not in ("pending", "running"):
            return str(run["status"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"run {run_id} did not end")


async def test_counters_move_by_the_work_done(
    metered: httpx.AsyncClient, metered_settings: Settings
) -> None:
    http = metered
    before = await scrape(http)
    thread_ids = []
    for _ in range(3):
        thread = (await http.post("/threads", json={})).json()
        thread_ids.append(thread["thread_id"])
        answer = await http.post(
            f"/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "metered_echo", "input": {"text": "hi"}},
        )
        assert answer.status_code == 200, answer.text
    thread = (await http.post("/threads", json={})).json()
    failed = await http.post(
        f"/threads/{thread['thread_id']}/runs/wait",
        json={"assistant_id": "metered_approval", "input": {"topic": "explode"}},
    )
    assert failed.status_code == 200, failed.text

    # A run whose worker died: its lease lapsed while it was running. A sweep requeues it
    # (a takeover) and the executor runs it to the end.
    thread = (await http.post("/threads", json={})).json()
    queued = await http.post(
        f"/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "metered_echo", "input": {"text": "x"}, "after_seconds": 3600},
    )
    run_id = queued.json()["run_id"]
    async with await psycopg.AsyncConnection.connect(
        metered_settings.psycopg_url, autocommit=True
    ) as conn:
        await conn.execute(
            "UPDATE runs SET status = 'running', lease_owner = 'dead-worker', "
            "lease_epoch = lease_epoch + 1, lease_expires_at = now() - interval '1 second', "
            "not_before = now(), started_at = now() WHERE run_id = %s",
            (run_id,),
        )
        await conn.execute(
            "UPDATE threads SET status = 'busy' WHERE thread_id = %s", (thread["thread_id"],)
        )
    assert await wait_run(http, thread["thread_id"], run_id) == "success"

    after = await scrape(http)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("trellis_runs_created_total", graph_id="metered_echo") == 4
    assert moved("trellis_runs_created_total", graph_id="metered_approval") == 1
    assert moved("trellis_runs_started_total", graph_id="metered_echo") == 4
    assert moved("trellis_runs_finished_total", graph_id="metered_echo", status="success") == 4
    assert moved("trellis_runs_finished_total", graph_id="metered_approval", status="error") == 1
    assert (
        moved("trellis_run_duration_seconds_count", graph_id="metered_echo", status="success") == 4
    )
    assert moved("trellis_run_lease_takeovers_total") == 1
    wait_route = {
        "method": "POST",
        "route": "/threads/{thread_id}/runs/wait",
        "status": "200",
    }
    assert moved("trellis_http_request_duration_seconds_count", **wait_route) == 4
    created = moved("trellis_db_query_duration_seconds_count", statement="run.create") + moved(
        "trellis_db_query_duration_seconds_count", statement="run.insert"
    )
    assert created == 5
    assert moved("trellis_db_query_duration_seconds_count", statement="run.queue_stats") == 1

    # Bounded labels: templates and names, never an id.
    for (name, labels), _ in after.items():
        for label, text in labels:
            assert not _UUID.search(text), (name, label, text)
    assert value(after, "trellis_run_queue_depth", state="due") == 0
    assert value(after, "trellis_run_queue_oldest_age_seconds") == 0
    assert value(after, "trellis_db_pool_size", pool="psycopg") >= 1
    assert ("trellis_db_pool_waiting", (("pool", "psycopg"),)) in after
    assert ("trellis_sse_streams_open", ()) in after


async def test_queue_depth_and_age_of_the_oldest_run(metered_graphs: Path) -> None:
    # An API without a worker: what it queues stays queued.
    with scratch_database() as url:
        settings = security_settings(url, graphs_config=metered_graphs, rate_limit_enabled=False)
        async with (
            serve_app(create_app(settings, worker=False)) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
        ):
            empty = await scrape(http)
            assert value(empty, "trellis_run_queue_depth", state="due") == 0
            assert value(empty, "trellis_run_queue_oldest_age_seconds") == 0
            run_ids = []
            for after_seconds in (0, 0, 3600):
                thread = (await http.post("/threads", json={})).json()
                queued = await http.post(
                    f"/threads/{thread['thread_id']}/runs",
                    json={
                        "assistant_id": "metered_echo",
                        "input": {"text": "x"},
                        "after_seconds": after_seconds,
                    },
                )
                assert queued.status_code == 200, queued.text
                run_ids.append(queued.json()["run_id"])
            async with await psycopg.AsyncConnection.connect(
                settings.psycopg_url, autocommit=True
            ) as conn:
                await conn.execute(
                    "UPDATE runs SET not_before = now() - interval '90 seconds' WHERE run_id = %s",
                    (run_ids[0],),
                )
            queued_now = await scrape(http)
    assert value(queued_now, "trellis_run_queue_depth", state="due") == 2
    assert value(queued_now, "trellis_run_queue_depth", state="delayed") == 1
    assert 90 <= value(queued_now, "trellis_run_queue_oldest_age_seconds") < 150


async def test_metrics_are_protected_unless_opened_to_a_scraper(security_db: str) -> None:
    closed = security_settings(
        security_db, auth_mode="api_key", metrics_public_addresses=["10.0.0.0/8"]
    )
    async with trellis(closed) as url, httpx.AsyncClient(base_url=url) as http:
        key = await create_key(closed, "metrics-reader")
        headers = {"x-api-key": key.secret_key}
        before = parse((await http.get("/metrics", headers=headers)).text)
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        allowed = await http.get("/metrics", headers=headers)
        assert allowed.status_code == 200
        after = parse(allowed.text)
    failures = ("trellis_auth_failures_total", (("mode", "api_key"),))
    assert after.get(failures, 0) - before.get(failures, 0) == 1

    opened = closed.model_copy(update={"metrics_public_addresses": ["127.0.0.1/32"]})
    async with trellis(opened) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/metrics")).status_code == 200
        # Only `/metrics` is opened to the scraper's address.
        assert (await http.post("/threads/search", json={})).status_code == 401
