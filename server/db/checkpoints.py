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
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg import AsyncClientCursor, AsyncCursor, sql
from psycopg.abc import Params, Query
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.checkpoint_deltas import (
    BlobKey,
    Chains,
    ChannelKey,
    Stored,
    Warm,
    encode,
    known_lists,
    parse,
)
from server.db.pool import Pool

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
LIST_PAGE = 64
"""Checkpoints `alist` reads per query."""


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

    def __init__(
        self, conn: Pool, pipe: None = None, serde: SerializerProtocol | None = None
    ) -> None:
        super().__init__(conn, pipe, serde)
        self.warm = Warm()
        """The list values of the threads this process's runs wrote last (`Warm`)."""

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

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        thread_id, ns = conf["thread_id"], conf.get("checkpoint_ns", "")
        if checkpoint_id := get_checkpoint_id(config):
            where = "WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s"
            args: tuple[str, ...] = (thread_id, ns, checkpoint_id)
        else:
            where = (
                "WHERE thread_id = %s AND checkpoint_ns = %s ORDER BY checkpoint_id DESC LIMIT 1"
            )
            args = (thread_id, ns)
        if (remembered := known_lists()) is not None:
            # What the run writes next extends what it reads now, and nothing older.
            for key in [k for k in remembered if k[:2] == (thread_id, ns)]:
                del remembered[key]
        async with self._cursor() as cur:
            await cur.execute(self.SELECT_SQL + where, args, binary=True)
            loaded = await self._load_rows(cur, await cur.fetchall(), remembered)
        return loaded[0] if loaded else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, object] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        # As the stock saver, newest first, but a page at a time: the stock one fetches
        # every row (and every whole value) before yielding the first.
        where, args = self._search_where(config, filter, before)
        after: tuple[str, str, str] | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            size = LIST_PAGE if remaining is None else min(LIST_PAGE, remaining)
            page_where, params = where, list(args)
            if after is not None:
                page_where += " AND " if page_where else "WHERE "
                page_where += "(checkpoint_id, thread_id, checkpoint_ns) < (%s, %s, %s)"
                params.extend(after)
            query = (
                self.SELECT_SQL
                + page_where
                + " ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC LIMIT %s"
            )
            async with self._cursor() as cur:
                await cur.execute(query, [*params, size], binary=True)
                rows = await cur.fetchall()
                page = await self._load_rows(cur, rows)
            for item in page:
                yield item
            if len(rows) < size:
                return
            last = rows[-1]
            after = (last["checkpoint_id"], last["thread_id"], last["checkpoint_ns"])
            remaining = None if remaining is None else remaining - len(rows)

    async def _load_rows(
        self,
        cur: AsyncCursor[DictRow],
        rows: list[DictRow],
        remember: dict[ChannelKey, Stored] | None = None,
    ) -> list[CheckpointTuple]:
        """Checkpoint tuples of `SELECT_SQL` rows, their delta values read back whole
        (and, with `remember`, the list values noted for the run's next writes)."""
        await self._migrate_sends(cur, rows)
        chains = Chains(self.serde)
        keys: list[list[BlobKey]] = []
        warm: dict[BlobKey, Stored] = {}
        for row in rows:
            versions = row["checkpoint"].get("channel_versions", {})
            keys.append([])
            for channel_b, type_, blob in row["channel_values"] or ():
                if type_ != b"empty":
                    channel = channel_b.decode()
                    key = (row["thread_id"], row["checkpoint_ns"], channel, str(versions[channel]))
                    if (held := self.warm.get(key, type_.decode(), blob)) is not None:
                        warm[key] = held
                    else:
                        chains.add(key, type_.decode(), blob)
                    keys[-1].append(key)
        await chains.fetch(cur, [k for k in chains.rows if parse(chains.rows[k][0])])
        loaded = []
        for row, row_keys in zip(rows, keys, strict=True):
            blobs: dict[str, object] = {}
            for key in row_keys:
                if (stored := warm.get(key)) is not None:
                    blobs[key[2]] = list(stored.items)
                else:
                    value = blobs[key[2]] = chains.load(key)
                    if remember is None or type(value) is not list:
                        continue
                    stored = chains.stored(key, value)
                    self.warm.put(key[:3], stored, *chains.rows[key])
                if remember is not None:
                    remember[key[:3]] = stored
            loaded.append(self._tuple(row, blobs))
        return loaded

    async def _migrate_sends(self, cur: AsyncCursor[DictRow], rows: list[DictRow]) -> None:
        """Checkpoints older than format 4 read their pending sends from their parent's writes."""
        old = [r for r in rows if r["checkpoint"]["v"] < 4 and r["parent_checkpoint_id"]]
        if not old:
            return
        await cur.execute(
            self.SELECT_PENDING_SENDS_SQL,
            (old[0]["thread_id"], [r["parent_checkpoint_id"] for r in old]),
        )
        by_parent: dict[str, list[DictRow]] = {}
        for row in old:
            by_parent.setdefault(row["parent_checkpoint_id"], []).append(row)
        for sends in await cur.fetchall():
            for row in by_parent.get(sends["checkpoint_id"], []):
                if row["channel_values"] is None:
                    row["channel_values"] = []
                self._migrate_pending_sends(
                    sends["sends"], row["checkpoint"], row["channel_values"]
                )

    def _tuple(self, row: DictRow, blobs: dict[str, object]) -> CheckpointTuple:
        def config(checkpoint_id: str) -> RunnableConfig:
            return {
                "configurable": {
                    "thread_id": row["thread_id"],
                    "checkpoint_ns": row["checkpoint_ns"],
                    "checkpoint_id": checkpoint_id,
                }
            }

        checkpoint: Checkpoint = row["checkpoint"]
        checkpoint["channel_values"] = {**(checkpoint.get("channel_values") or {}), **blobs}
        return CheckpointTuple(
            config(row["checkpoint_id"]),
            checkpoint,
            row["metadata"],
            config(row["parent_checkpoint_id"]) if row["parent_checkpoint_id"] else None,
            self._load_writes(row["pending_writes"]),
        )

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        # As the stock saver (primitives inline, the rest as blobs of their new versions),
        # with list values that only grew stored as deltas while a run remembers them.
        conf = config["configurable"]
        thread_id, ns = conf["thread_id"], conf["checkpoint_ns"]
        inline = dict(checkpoint["channel_values"])
        remembered = known_lists()
        learned: dict[ChannelKey, tuple[Stored | None, str, bytes]] = {}
        blobs: list[tuple[str, str, str, str, str, bytes | None]] = []
        for channel, value in checkpoint["channel_values"].items():
            if isinstance(value, _DeltaSnapshot):
                inline[channel] = True
            elif value is None or isinstance(value, str | int | float | bool):
                continue
            else:
                del inline[channel]
            if channel not in new_versions:
                continue
            version, key = str(new_versions[channel]), (thread_id, ns, channel)
            if remembered is not None and type(value) is list:
                type_, blob, stored = encode(self.serde, remembered.get(key), version, value)
            else:
                (type_, blob), stored = self.serde.dumps_typed(value), None
            learned[key] = (stored, type_, blob)
            blobs.append((thread_id, ns, channel, version, type_, blob))
        token = _WRITING.set(True)
        try:
            async with self._cursor(pipeline=True) as cur:
                if blobs:
                    await cur.executemany(self.UPSERT_CHECKPOINT_BLOBS_SQL, blobs)
                await cur.execute(
                    self.UPSERT_CHECKPOINTS_SQL,
                    (
                        thread_id,
                        ns,
                        checkpoint["id"],
                        conf.get("checkpoint_id"),
                        Jsonb({**checkpoint, "channel_values": inline}),
                        Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
                    ),
                )
        finally:
            _WRITING.reset(token)
        if remembered is not None:
            for key, (stored, type_, blob) in learned.items():
                self.warm.put(key, stored, type_, blob)
                if stored is None:
                    remembered.pop(key, None)
                else:
                    remembered[key] = stored
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy != "delete":
            # Deleting older checkpoints would delete the rows later deltas extend.
            raise NotImplementedError("keep_latest pruning does not know Trellis' delta rows yet")
        await super().aprune(thread_ids, strategy=strategy)

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
