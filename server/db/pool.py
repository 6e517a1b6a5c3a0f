"""The psycopg pool LangGraph's checkpointer and store share, with a cheap health check."""

from __future__ import annotations

import time
import weakref
from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from server.core.settings import Settings

Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[DictRow]]
"""The shared pool: autocommit connections whose rows are dicts."""


class IdleCheck:
    """Pool health check: ping a connection only when it has not been handed out for
    `idle_seconds` (a ping on every checkout costs a round trip per query)."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._handed_out: weakref.WeakKeyDictionary[AsyncConnection[DictRow], float] = (
            weakref.WeakKeyDictionary()
        )

    async def check(self, conn: AsyncConnection[DictRow]) -> None:
        """The pool's `check` hook (no `reset` hook: it would make every return a task)."""
        now = time.monotonic()
        last = self._handed_out.get(conn)
        if last is None or now - last > self.idle_seconds:
            await AsyncConnectionPool.check_connection(conn)
        self._handed_out[conn] = now


async def open_pool(settings: Settings) -> Pool:
    """The psycopg pool LangGraph's checkpointer and store use (autocommit, no prepares)."""
    pool: Pool = AsyncConnectionPool(
        settings.psycopg_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout_seconds,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=IdleCheck(settings.db_pool_check_idle_seconds).check,
        open=False,
    )
    await pool.open(wait=True, timeout=settings.db_pool_timeout_seconds)
    return pool
