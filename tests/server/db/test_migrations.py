"""`trellis migrate` on an empty database: upgrade, downgrade to base, upgrade again."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from tests.support.servers import ROOT, scratch_database

TRELLIS_TABLES = {"assistants", "assistant_versions", "threads", "runs"}
LANGGRAPH_TABLES = {
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoint_migrations",
    "store",
    "store_migrations",
}


def _migrate(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "migrate", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    return output


def _tables(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


VERSION_TABLE = "trellis_alembic_version"


def _alembic_revisions(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [row[0] for row in conn.execute(f"SELECT version_num FROM {VERSION_TABLE}")]


def _types(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype = 'e'"
        ).fetchall()
    return {row[0] for row in rows}


def test_upgrade_downgrade_upgrade() -> None:
    with scratch_database() as database_url:
        assert _tables(database_url) == set()

        output = _migrate(database_url, "upgrade")
        assert "upgrade done" in output
        upgraded = _tables(database_url)
        assert upgraded >= TRELLIS_TABLES | LANGGRAPH_TABLES | {VERSION_TABLE}
        assert len(_alembic_revisions(database_url)) == 1
        enums = _types(database_url)

        # Idempotent: a second upgrade is a no-op.
        _migrate(database_url)
        assert _tables(database_url) == upgraded

        _migrate(database_url, "downgrade", "base")
        downgraded = _tables(database_url)
        assert not downgraded & TRELLIS_TABLES, downgraded
        # Every table the Trellis migrations created is gone; LangGraph's own remain.
        remaining = downgraded - {VERSION_TABLE}
        assert remaining <= upgraded
        assert remaining >= LANGGRAPH_TABLES
        assert all(t.startswith(("checkpoint", "store", "vector")) for t in remaining), remaining
        assert _alembic_revisions(database_url) == []
        assert _types(database_url) == set(), "enum types left behind by the downgrade"

        _migrate(database_url, "upgrade", "head")
        assert _tables(database_url) == upgraded
        assert _types(database_url) == enums
        assert len(_alembic_revisions(database_url)) == 1
