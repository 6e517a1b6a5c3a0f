"""LangGraph's checkpoint tables: the fenced saver Trellis runs with, thread copies, and the
checkpoints a rolled-back run leaves behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Self

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncClientCursor, AsyncCursor, sql
from psycopg.abc import Params, Query
from psycopg.rows import DictRow, dict_row
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.pool import Pool

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


async def copy_thread(conn: AsyncConnection, source: str, target: str) -> None:
    """Copy every checkpoint, blob and write of `source` to `target`."""
    for table in TABLES:
        columns = (
            (
                await conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = :t "
                        "AND column_name <> 'thread_id' ORDER BY ordinal_position"
                    ),
                    {"t": table},
                )
            )
            .scalars()
            .all()
        )
        cols = ", ".join(f'"{c}"' for c in columns)
        await conn.execute(
            text(
                f"INSERT INTO {table} (thread_id, {cols}) "
                f"SELECT :target, {cols} FROM {table} WHERE thread_id = :source"
            ),
            {"source": source, "target": target},
        )


async def checkpoint_before(conn: AsyncConnection, thread_id: uuid.UUID, run_id: str) -> str | None:
    """The thread's latest checkpoint that `run_id` did not write: where a rollback
    returns it to (None when the run wrote its first)."""
    found = await conn.scalar(
        text(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = :t "
            "AND checkpoint_ns = '' AND metadata->>'run_id' IS DISTINCT FROM :r "
            "ORDER BY checkpoint_id DESC LIMIT 1"
        ),
        {"t": str(thread_id), "r": run_id},
    )
    return None if found is None else str(found)


async def rollback_checkpoints(conn: AsyncConnection, thread_id: uuid.UUID, run_id: str) -> None:
    """Delete the checkpoints a run wrote (those whose metadata names it) and their writes."""
    params = {"t": str(thread_id), "r": run_id}
    await conn.execute(
        text(
            "DELETE FROM checkpoint_writes w USING checkpoints c "
            "WHERE w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns "
            "AND w.checkpoint_id = c.checkpoint_id "
            "AND c.thread_id = :t AND c.metadata->>'run_id' = :r"
        ),
        params,
    )
    await conn.execute(
        text("DELETE FROM checkpoints WHERE thread_id = :t AND metadata->>'run_id' = :r"),
        params,
    )


# Fencing -----------------------------------------------------------------


class LeaseLost(Exception):
    """Raised when a worker writes a checkpoint for a run whose lease it no longer holds."""


@dataclass(frozen=True)
class Fence:
    """The lease a run's checkpoint writes must still hold: run, worker and epoch."""

    run_id: uuid.UUID
    worker: str
    epoch: int


CURRENT_FENCE: ContextVar[Fence | None] = ContextVar("trellis_fence", default=None)
"""Set by the executor for the task running a run; inherited by LangGraph's own tasks."""

_WRITING: ContextVar[bool] = ContextVar("trellis_fence_writing", default=False)

LEASE_LOST_SQLSTATE = "TR001"
"""Raised by `trellis_assert_lease` (migration 0001) when the lease is gone."""


class _WriteScript(AsyncClientCursor[DictRow]):
    """Collects the saver's write statements as literal SQL instead of executing them.

    `aput` and `aput_writes` only write (they never read a result), so their statements
    can go to the server afterwards in one simple query, behind the lease check: one
    round trip, and one implicit transaction, per fenced write.
    """

    statements: list[str]

    async def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        self.statements.append(self.mogrify(query, params))
        return self

    async def executemany(
        self, query: Query, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        self.statements.extend(self.mogrify(query, params) for params in params_seq)


class FencedPostgresSaver(AsyncPostgresSaver):
    """`AsyncPostgresSaver` whose writes are fenced on the run's lease, without a global lock.

    A checkpoint write made on behalf of a run happens in one transaction with a
    `FOR SHARE` check that the run's lease still belongs to this worker and epoch
    (`trellis_assert_lease`, created by migration 0001).
    A takeover bumps the epoch with an UPDATE that waits for such a transaction,
    so after it no write from the old worker can land: exactly one writer per run.

    The stock saver serialises every database call of the process behind one
    `asyncio.Lock`, needed only when it shares a single connection. Trellis always
    gives it a pool, so each call takes its own connection instead.
    """

    conn: Pool

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        fence = CURRENT_FENCE.get() if _WRITING.get() else None
        async with self.conn.connection() as conn:
            if fence is not None:
                # The lease check and the writes as one multi-statement simple query: one
                # round trip, run as one transaction, and a lost lease aborts the writes.
                async with _WriteScript(conn, row_factory=dict_row) as script:
                    script.statements = [
                        sql.SQL("SELECT trellis_assert_lease({}, {}, {})")
                        .format(str(fence.run_id), fence.worker, fence.epoch)
                        .as_string(conn)
                    ]
                    yield script
                try:
                    await conn.execute(";\n".join(script.statements).encode(), prepare=False)
                except psycopg.Error as exc:
                    if exc.sqlstate == LEASE_LOST_SQLSTATE:
                        raise LeaseLost(str(exc.diag.message_primary)) from exc
                    raise
            elif pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        token = _WRITING.set(True)
        try:
            return await super().aput(config, checkpoint, metadata, new_versions)
        finally:
            _WRITING.reset(token)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, object]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        # As the stock saver does, but serialised here: it hands `_dump_writes` to a thread,
        # a hop (a thread wake-up and the GIL back and forth) that costs a worker more CPU
        # than serialising a task's writes.
        query = (
            self.UPSERT_CHECKPOINT_WRITES_SQL
            if all(channel in WRITES_IDX_MAP for channel, _ in writes)
            else self.INSERT_CHECKPOINT_WRITES_SQL
        )
        conf = config["configurable"]
        params = self._dump_writes(
            conf["thread_id"],
            conf["checkpoint_ns"],
            conf["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        token = _WRITING.set(True)
        try:
            async with self._cursor(pipeline=True) as cur:
                await cur.executemany(query, params)
        finally:
            _WRITING.reset(token)
