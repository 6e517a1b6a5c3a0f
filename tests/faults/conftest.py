"""One multi-process Trellis shared by the fault tests: own Redis, API process, two workers.

Each test gets it back healthy (two live, unpaused workers and Redis up), so the
order of the tests does not matter. On failure the tails of every process log
are printed. The tests that stop or restart Postgres, or count its transactions, use
another one (`pg_trellis`): two API processes and two workers on a Postgres cluster of
their own.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.faults.harness import Cluster, PrivatePostgres, RedisServer, cluster

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every fault test is `slow`: it runs a multi-process cluster and kills parts of it."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def fault_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    # Not under pytest's basetemp: other pytest sessions on this machine prune those.
    logs = Path(tempfile.mkdtemp(prefix="trellis-faults-"))
    redis = RedisServer(logs)
    redis.start()
    try:
        env = {"REDIS_URL": redis.url, "RUN_EVENT_MAX_LENGTH": "100", "REDIS_MAX_CONNECTIONS": "16"}
        with cluster(logs, workers=2, env=env) as c:
            c.redis = redis  # type: ignore[attr-defined]
            yield c
    finally:
        redis.kill()
        if request.session.testsfailed:
            print(f"\nfault test logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)


PG_ENV = {"SSE_HEARTBEAT_SECONDS": "2"}
"""Idle streams wake every 2 s: whatever a heartbeat asked of Postgres would show at once."""


@pytest.fixture(scope="session")
def pg_trellis(request: pytest.FixtureRequest) -> Iterator[tuple[Cluster, PrivatePostgres]]:
    """Two API processes and two workers on a Postgres cluster of their own (and Redis)."""
    base = Path(tempfile.mkdtemp(prefix="trellis-pg-faults-"))
    base.chmod(0o755)  # the cluster's user (not root) must reach its directory below
    logs = base / "logs"
    logs.mkdir()
    pg = PrivatePostgres(base / "pg")
    (base / "pg").mkdir()
    redis = RedisServer(logs)
    try:
        pg.init()
        db = pg.create_database("trellis")
        redis.start()
        env = {"REDIS_URL": redis.url, **PG_ENV}
        with cluster(logs, workers=2, env=env, database=db) as c:
            c.add_api()
            yield c, pg
    finally:
        redis.kill()
        pg.close()
        if request.session.testsfailed:
            print(f"\npostgres fault test logs kept in {logs}")
        else:
            shutil.rmtree(base, ignore_errors=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        c = item.funcargs.get("trellis") if hasattr(item, "funcargs") else None
        if isinstance(c, Cluster):
            report.sections.append(("trellis logs", c.dump_logs(60)))
    return report


@pytest.fixture
def trellis(fault_cluster: Cluster) -> Iterator[Cluster]:
    """The shared cluster, with Redis up and exactly two healthy workers."""
    c = fault_cluster
    redis: RedisServer = c.redis  # type: ignore[attr-defined]
    if not redis.alive():
        redis.start()
    for proc in c.alive_workers():
        proc.send_signal(signal.SIGCONT)
    while len(c.alive_workers()) < 2:
        c.start_worker()
    yield c
    for proc in c.alive_workers():
        proc.send_signal(signal.SIGCONT)
    extra = c.alive_workers()[2:]
    for proc in extra:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
async def client(trellis: Cluster) -> AsyncIterator[LangGraphClient]:
    lg = get_client(url=trellis.url, api_key=None)
    yield lg
    await lg.http.client.aclose()


@pytest.fixture
async def http(trellis: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=trellis.url, timeout=30.0) as h:
        yield h
