"""Schema management: Trellis' Alembic migrations plus LangGraph's own `setup()`."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg.rows import dict_row
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import trellis_store

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "trellis_alembic_version"
"""Where Alembic records Trellis' revision (`migrations/env.py` names it)."""


def alembic_config(sqlalchemy_url: str) -> Config:
    """An Alembic config pointing at Trellis' migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


async def _langgraph_setup(psycopg_url: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(psycopg_url) as saver:
        await saver.setup()
    async with AsyncPostgresStore.from_conn_string(psycopg_url) as store:
        await store.setup()
    connect = psycopg.AsyncConnection.connect
    async with await connect(psycopg_url, autocommit=True, row_factory=dict_row) as conn:
        await trellis_store.apply_schema(conn)


def upgrade_trellis(sqlalchemy_url: str, revision: str = "head") -> None:
    """Apply Trellis' own migrations up to `revision` (blocking: call it from a thread)."""
    command.upgrade(alembic_config(sqlalchemy_url), revision)


def upgrade(sqlalchemy_url: str, psycopg_url: str, revision: str = "head") -> None:
    """Apply Trellis' migrations up to `revision`, then LangGraph's checkpoint and store setup."""
    upgrade_trellis(sqlalchemy_url, revision)
    asyncio.run(_langgraph_setup(psycopg_url))


def downgrade(sqlalchemy_url: str, revision: str) -> None:
    """Revert Trellis' own schema to `revision` (LangGraph's tables are left alone)."""
    command.downgrade(alembic_config(sqlalchemy_url), revision)


@functools.cache
def head_revision() -> str | None:
    """The newest revision of Trellis' migrations (what `trellis migrate` brings a database to)."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


async def current_revision(conn: AsyncConnection) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    exists = await conn.execute(text("SELECT to_regclass(:table)"), {"table": VERSION_TABLE})
    if exists.scalar() is None:
        return None
    row = (await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).first()
    return str(row[0]) if row is not None else None
