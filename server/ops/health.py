"""Component checks shared by `/ready` and `trellis doctor`: Postgres, migrations, Redis,
Qdrant and the served graphs.

Each check answers a `Check`: whether the component works, one line of detail, and what to
do when it does not. A check never raises, and gives up after `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import psycopg
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.core.settings import Settings
from server.db import migrate
from server.db.engine import connect_problem, redact_url
from server.graph_host.registry import GraphRegistry

log = logging.getLogger("trellis.health")

CHECK_TIMEOUT = 3.0
"""Seconds a component has to answer a check."""


@dataclass(frozen=True)
class Check:
    """The outcome of checking one component."""

    name: str
    ok: bool
    detail: str
    """What was found: a version, a revision, or what went wrong."""
    fix: str | None = None
    """What to do about a failure (None when it passed)."""


async def timed(name: str, check: Callable[[], Awaitable[Check]]) -> Check:
    """`check()`, or a failed `Check` when it takes longer than `CHECK_TIMEOUT` or raises."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await check()
    except TimeoutError:
        return Check(name, False, f"did not answer within {CHECK_TIMEOUT:g} s", "is it running?")
    except Exception as error:
        log.warning("check failed", extra={"component": name, "error": repr(error)[:300]})
        return Check(name, False, f"{type(error).__name__}: {error}"[:300], "see the log")


async def check_postgres(engine: AsyncEngine, url: str) -> Check:
    """A query on Trellis' engine; the server's version."""
    try:
        async with engine.connect() as conn:
            version = (await conn.execute(text("SHOW server_version"))).scalar()
    except exc.DBAPIError as error:
        if isinstance(error.orig, psycopg.Error):
            problem = connect_problem(error.orig, url)
        else:
            problem = f"{type(error.orig).__name__}: {error.orig}"
        return Check("postgres", False, problem, "check DATABASE_URL and that Postgres runs")
    return Check("postgres", True, f"PostgreSQL {version} at {redact_url(url)}")


async def check_migrations(engine: AsyncEngine) -> Check:
    """Whether the database is at the newest revision of Trellis' migrations."""
    head = migrate.head_revision()
    async with engine.connect() as conn:
        current = await migrate.current_revision(conn)
    if current == head:
        return Check("migrations", True, f"at head ({head})")
    where = "never migrated" if current is None else f"at {current}"
    return Check("migrations", False, f"{where}, head is {head}", "run `trellis migrate` (upgrade)")


async def check_redis(url: str, why: str) -> Check:
    """A PING to the Redis at `url`, used for `why`."""
    redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    where = redact_url(url)
    try:
        await redis.ping()
        info = await redis.info("server")
    except (RedisError, OSError) as error:
        return Check(
            "redis",
            False,
            f"no answer at {where} ({type(error).__name__}: {error})"[:300],
            f"start Redis or fix REDIS_URL (used for {why})",
        )
    finally:
        await redis.aclose()
    return Check("redis", True, f"Redis {info.get('redis_version', '?')} at {where} ({why})")


async def check_qdrant(url: str, api_key: str | None) -> Check:
    """Qdrant server's readiness endpoint."""
    headers = {"api-key": api_key} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
            response = await client.get(f"{url.rstrip('/')}/readyz", headers=headers)
    except httpx.HTTPError as error:
        return Check(
            "qdrant",
            False,
            f"no answer at {url} ({type(error).__name__})",
            "start Qdrant or fix QDRANT_URL",
        )
    if not response.is_success:
        return Check(
            "qdrant",
            False,
            f"GET {url}/readyz answered {response.status_code}",
            "check QDRANT_URL and QDRANT_API_KEY",
        )
    return Check("qdrant", True, f"ready at {url}")


def dependency_checks(settings: Settings, *, redis_connected: bool) -> list[Awaitable[Check]]:
    """The checks of Redis and Qdrant, for those this process uses."""
    checks: list[Awaitable[Check]] = []
    if (why := redis_use(settings, redis_connected)) is not None:
        checks.append(timed("redis", lambda: check_redis(settings.redis_url, why)))
    if settings.qdrant_url is not None:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        url = settings.qdrant_url
        checks.append(timed("qdrant", lambda: check_qdrant(url, key)))
    return checks


async def dependencies_up(settings: Settings, *, redis_connected: bool) -> dict[str, bool]:
    """Whether Redis and Qdrant answer, for those this process uses (`/metrics`' gauges)."""
    checks = dependency_checks(settings, redis_connected=redis_connected)
    return {check.name: check.ok for check in await asyncio.gather(*checks)}


def check_graphs(registry: GraphRegistry) -> Check:
    """Whether every graph of `langgraph.json` loaded."""
    broken = [graph for graph in registry if graph.error is not None]
    if not broken:
        return Check("graphs", True, f"{len(registry.graph_ids)} loaded: {registry.graph_ids}")
    named = "; ".join(f"{graph.graph_id!r}: {graph.error}" for graph in broken)
    return Check(
        "graphs",
        False,
        f"{len(broken)} of {len(registry.graph_ids)} did not load: {named}"[:500],
        f"fix the graph files named in {registry.config.path}",
    )


def redis_use(settings: Settings, connected: bool) -> str | None:
    """What this process uses Redis for (None: nothing, so readiness does not depend on it)."""
    uses = []
    if connected:
        uses.append("run events")
    if settings.rate_limit_enabled and "redis" in settings.limits_storage_url.split("://")[0]:
        uses.append("rate limits")
    return " and ".join(uses) or None


async def readiness(
    settings: Settings, engine: AsyncEngine, registry: GraphRegistry, *, redis_connected: bool
) -> list[Check]:
    """Every check a serving process depends on, run at once."""
    checks: list[Awaitable[Check]] = [
        timed("postgres", lambda: check_postgres(engine, settings.psycopg_url)),
        timed("migrations", lambda: check_migrations(engine)),
        *dependency_checks(settings, redis_connected=redis_connected),
    ]
    results = list(await asyncio.gather(*checks))
    results.append(check_graphs(registry))
    return results
