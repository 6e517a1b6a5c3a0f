"""Schema management: Trellis' Alembic migrations plus LangGraph's own `setup()`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


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
