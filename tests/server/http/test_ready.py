"""`/ready`: 200 with every component when all answer; 503 naming the one that does not."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from server.http.app import create_app
from tests.support.pg_cluster import PASSWORD, cluster_user, pg_ctl_command, private_cluster
from tests.support.security import security_settings, serve_app, trellis
from tests.support.servers import free_port


async def test_ready_names_every_component(http: httpx.AsyncClient) -> None:
    answer = await http.get("/ready")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    components = body["components"]
    assert {"postgres", "migrations", "graphs"} <= set(components)
    assert set(components.values()) == {"ok"}
    assert (await http.get("/ok")).json() == {"ok": True}


async def test_a_redis_that_does_not_answer_is_named(security_db: str) -> None:
    # Rate limits live in Redis: a REDIS_URL on a closed port is a failing component.
    settings = security_settings(security_db, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("/ready")
        assert (await http.get("/ok")).status_code == 200  # liveness is not readiness
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["code"] == "not_ready"
    assert body["detail"] == "not ready: redis failing"
    assert body["components"]["redis"] == "failing"
    assert body["components"]["postgres"] == "ok"
    assert "127.0.0.1" not in answer.text  # public: which component, not where or why


async def test_a_schema_behind_head_is_named(security_db: str) -> None:
    settings = security_settings(security_db, rate_limit_enabled=False)
    async with (
        trellis(settings) as url,
        httpx.AsyncClient(base_url=url) as http,
        await psycopg.AsyncConnection.connect(settings.psycopg_url, autocommit=True) as conn,
    ):
        table = "trellis_alembic_version"
        head = await (await conn.execute(f"SELECT version_num FROM {table}")).fetchone()
        assert head is not None
        await conn.execute(f"UPDATE {table} SET version_num = '0001'")
        try:
            behind = await http.get("/ready")
        finally:
            await conn.execute(f"UPDATE {table} SET version_num = %s", (head[0],))
        again = await http.get("/ready")
    assert behind.status_code == 503
    assert behind.json()["components"]["migrations"] == "failing"
    assert behind.json()["detail"] == "not ready: migrations failing"
    assert again.status_code == 200


@pytest.fixture
def private_postgres() -> Iterator[tuple[int, Path]]:
    """A Postgres cluster of this test's own, which it may stop."""
    port = free_port()
    with private_cluster(port, "trellis-ready-") as base:
        yield port, base


async def test_a_stopped_postgres_is_named(private_postgres: tuple[int, Path]) -> None:
    port, base = private_postgres
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
    settings = security_settings(url, rate_limit_enabled=False, db_pool_timeout_seconds=2)
    async with (
        serve_app(create_app(settings, worker=False)) as server,
        httpx.AsyncClient(base_url=server, timeout=30) as http,
    ):
        assert (await http.get("/ready")).status_code == 200
        await asyncio.to_thread(
            subprocess.run,
            pg_ctl_command(base, "stop", port),
            user=cluster_user(),
            check=True,
            capture_output=True,
            timeout=60,
        )
        answer = await http.get("/ready")
        assert (await http.get("/ok")).status_code == 200
    assert answer.status_code == 503, answer.text
    components = answer.json()["components"]
    assert components["postgres"] == "failing"
    assert components["graphs"] == "ok"
    assert answer.json()["detail"].startswith("not ready: postgres")
