"""`trellis doctor`: checks what a Trellis needs, one human line per check.

    ok    postgres: PostgreSQL 16.4 at postgresql://trellis:***@db:5432/trellis
    FAIL  migrations: at 0005, head is 0006 -> run `trellis migrate` (upgrade)
    warn  tesseract: `tesseract` not found -> install tesseract (...)

A FAIL stops Trellis from serving (the command exits 1); a warn limits it (no separate
workers without Redis, no OCR without tesseract). Nothing is started, created or migrated:
unlike `trellis serve`, no embedded Postgres is started when none answers.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable

from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.builtin_toolbox import uses_openai
from server.core import tracing
from server.core.settings import Settings
from server.db.engine import create_engine
from server.graph_host.registry import GraphRegistry
from server.ops.health import (
    Check,
    check_graphs,
    check_migrations,
    check_postgres,
    check_qdrant,
    check_redis,
    timed,
)
from tools.images import OCR_INSTALL_HINT, find_tesseract
from tools.models.openai_provider import check_endpoint

WARN_ONLY = frozenset({"redis", "tesseract", "extensions", "tracing"})
"""Checks whose failure limits Trellis without stopping it."""


def check_configuration(settings: Settings) -> Check:
    """The settings parsed (a bad one never gets here: it is reported by name before)."""
    auth = settings.auth_mode
    detail = (
        f"environment={settings.environment}, AUTH_MODE={auth}, graphs {settings.graphs_config}"
    )
    if not settings.graphs_config.is_file():
        return Check(
            "configuration",
            False,
            f"no langgraph.json at {settings.graphs_config}",
            "set GRAPHS_CONFIG (or --config) to your langgraph.json",
        )
    if auth == "none" and settings.environment == "production":
        return Check(
            "configuration",
            False,
            detail + ": no authentication in production",
            "set AUTH_MODE to api_key, jwt or custom",
        )
    return Check("configuration", True, detail)


async def check_model_endpoint(settings: Settings) -> Check:
    """The OpenAI-compatible endpoint answers `GET /models` (when one is configured)."""
    if not uses_openai(settings):
        return Check(
            "model endpoint", True, "none configured: the built-in assistant uses its offline model"
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
    problem = await check_endpoint(settings.openai_base_url, key, timeout=2.5)
    if problem is not None:
        return Check("model endpoint", False, problem, "check OPENAI_BASE_URL and OPENAI_API_KEY")
    return Check("model endpoint", True, f"answers ({settings.openai_base_url or 'OpenAI'})")


async def check_tesseract(settings: Settings) -> Check:
    """The OCR command runs (`tesseract --version`)."""
    found = find_tesseract(settings.tesseract_cmd)
    if found is None:
        return Check("tesseract", False, f"{settings.tesseract_cmd!r} not found", OCR_INSTALL_HINT)
    done = await asyncio.to_thread(
        subprocess.run, [found, "--version"], capture_output=True, text=True, timeout=10
    )
    lines = (done.stdout or done.stderr).strip().splitlines()
    if done.returncode != 0 or not lines:
        return Check("tesseract", False, f"{found} --version failed", OCR_INSTALL_HINT)
    return Check("tesseract", True, f"{lines[0]} ({found})")


async def check_qdrant_setting(settings: Settings) -> Check:
    """Qdrant server when `QDRANT_URL` is set; otherwise the embedded one is used."""
    if settings.qdrant_url is None:
        where = settings.qdrant_path or settings.embedded_data_dir / "qdrant"
        return Check("qdrant", True, f"embedded at {where} (one process at a time)")
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return await check_qdrant(settings.qdrant_url, key)


PG_STAT_STATEMENTS_HOW = (
    "to see the slowest statements here: add pg_stat_statements to shared_preload_libraries "
    "in postgresql.conf, restart Postgres, then run CREATE EXTENSION pg_stat_statements"
)

_TOP_STATEMENTS = text(
    """
    SELECT calls, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') AS query
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY total_exec_time DESC
    LIMIT 3
    """
)


async def check_extensions(engine: AsyncEngine) -> Check:
    """The extensions installed in Trellis' database; with pg_stat_statements, the three
    statements that took the most time in all (normalized text: never a parameter)."""
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT extname, extversion FROM pg_extension"))
        installed: dict[str, str] = {str(name): str(version) for name, version in found.all()}
        listed = ", ".join(f"{name} {version}" for name, version in sorted(installed.items()))
        if "pg_stat_statements" not in installed:
            return Check(
                "extensions", False, f"{listed}; pg_stat_statements not installed",
                PG_STAT_STATEMENTS_HOW,
            )  # fmt: skip
        try:
            rows = (await conn.execute(_TOP_STATEMENTS)).all()
        except exc.DBAPIError as error:
            first = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            return Check(
                "extensions", False, f"{listed}; pg_stat_statements: {first}"[:300],
                PG_STAT_STATEMENTS_HOW,
            )  # fmt: skip
    top = "; ".join(
        f"{index}) {total:.1f} ms in {calls} calls: {_shorten(query, 60)}"
        for index, (calls, total, query) in enumerate(rows, start=1)
    )
    return Check("extensions", True, f"{listed}; top statements by total time: {top or 'none'}")


def _shorten(query: str, limit: int) -> str:
    query = query.strip()
    return query if len(query) <= limit else query[: limit - 1] + "…"


async def check_tracing(settings: Settings) -> Check:
    """Whether OpenTelemetry tracing is on, and can be (the `otel` extra)."""
    ok, detail, fix = tracing.describe(settings)
    return Check("tracing", ok, detail, fix)


async def check_served_graphs(settings: Settings) -> Check:
    """Every graph of `langgraph.json` imports and compiles."""
    try:
        registry = await GraphRegistry.load(settings.graphs_config, checkpointer=InMemorySaver())
    except Exception as error:
        return Check(
            "graphs", False, f"{settings.graphs_config}: {error}"[:500], "fix the langgraph.json"
        )
    return check_graphs(registry)


async def diagnose(settings: Settings) -> list[Check]:
    """Every check, in the order they are printed."""
    configuration = check_configuration(settings)
    engine = create_engine(settings)
    try:
        checks: list[tuple[str, Callable[[], Awaitable[Check]]]] = [
            ("postgres", lambda: check_postgres(engine, settings.psycopg_url)),
            ("migrations", lambda: check_migrations(engine)),
            ("extensions", lambda: check_extensions(engine)),
            (
                "redis",
                lambda: check_redis(settings.redis_url, "run events, caches and rate limits"),
            ),
            ("qdrant", lambda: check_qdrant_setting(settings)),
            ("model endpoint", lambda: check_model_endpoint(settings)),
            ("tesseract", lambda: check_tesseract(settings)),
            ("tracing", lambda: check_tracing(settings)),
        ]
        results = await asyncio.gather(*(timed(name, check) for name, check in checks))
    finally:
        await engine.dispose()
    if not results[0].ok:  # without Postgres, whether the schema is at head is unknown
        results[1] = Check("migrations", False, "unknown: Postgres does not answer", "see above")
        results[2] = Check("extensions", False, "unknown: Postgres does not answer", "see above")
    graphs = await check_served_graphs(settings) if configuration.ok else None
    return [configuration, *results, *([graphs] if graphs is not None else [])]


def report(checks: list[Check]) -> tuple[list[str], bool]:
    """The lines to print, and whether every check that must pass passed."""
    lines = []
    healthy = True
    for check in checks:
        if check.ok:
            lines.append(f"ok    {check.name}: {check.detail}")
            continue
        warn = check.name in WARN_ONLY
        healthy = healthy and warn
        fix = f" -> {check.fix}" if check.fix else ""
        lines.append(f"{'warn' if warn else 'FAIL'}  {check.name}: {check.detail}{fix}")
    return lines, healthy
