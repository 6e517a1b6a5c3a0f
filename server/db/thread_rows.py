"""Thread rows: create, read, search and status bookkeeping, always scoped to an owner."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import cast

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.schemas import ThreadCount, ThreadSearch, ThreadTTL
from server.core.types import Interrupts, Json, JsonValue, StoredThread, ThreadTtlInfo
from server.db.engine import Conn, columns, fetch_all, fetch_one, jsonb, plain
from server.db.tables import Thread

T: Table = Thread.__table__  # type: ignore[assignment]
PUBLIC = [
    T.c.thread_id,
    T.c.created_at,
    T.c.updated_at,
    T.c.state_updated_at,
    T.c.metadata,
    T.c.status,
    T.c.config,
    T.c["values"],
    T.c.interrupts,
    T.c.error,
    T.c.values_omitted,
]
"""A thread's columns for `StoredThread`: the API's, plus which keys `values` leaves out."""

_PUBLIC = columns(*PUBLIC)


def _out(row: RowMapping | Mapping[str, object]) -> StoredThread:
    data = plain(row)
    data.pop("owner", None)
    if data.get("values") is None:
        data["values"] = {}
    data["values_omitted"] = list(data.get("values_omitted") or [])
    return cast(StoredThread, data)


async def create(
    conn: Conn,
    *,
    owner: str,
    thread_id: uuid.UUID,
    metadata: Json,
    if_exists: str = "raise",
    ttl: ThreadTTL | None = None,
) -> StoredThread | None:
    """Insert a thread (expiring `ttl.ttl` minutes from now, with `ttl`); returns None when
    the id is taken (the caller decides what that means)."""
    row = await fetch_one(
        conn,
        "INSERT INTO threads (thread_id, owner, metadata, ttl_strategy, ttl_minutes, expires_at) "
        "VALUES (%s, %s, %s, %s, %s::float8, now() + make_interval(secs => %s::float8 * 60)) "
        f"ON CONFLICT (thread_id) DO NOTHING RETURNING {_PUBLIC}",
        (
            thread_id,
            owner,
            jsonb(metadata),
            ttl.strategy if ttl else None,
            ttl.ttl if ttl else None,
            ttl.ttl if ttl else None,
        ),
    )
    return _out(row) if row is not None else None


async def set_ttl(conn: Conn, *, owner: str, thread_id: uuid.UUID, ttl: ThreadTTL) -> bool:
    """Give the thread a TTL, counted from now; False if it is not the owner's."""
    row = await fetch_one(
        conn,
        "UPDATE threads SET ttl_strategy = %s, ttl_minutes = %s::float8, "
        "expires_at = now() + make_interval(secs => %s::float8 * 60) "
        "WHERE thread_id = %s AND owner = %s RETURNING thread_id",
        (ttl.strategy, ttl.ttl, ttl.ttl, thread_id, owner),
    )
    return row is not None


async def ttl_of(conn: Conn, *, owner: str, thread_id: uuid.UUID) -> ThreadTtlInfo | None:
    """The thread's TTL as `GET /threads/{id}?include=ttl` shows it (None: it has none)."""
    row = await fetch_one(
        conn,
        "SELECT ttl_strategy, ttl_minutes, expires_at FROM threads "
        "WHERE thread_id = %s AND owner = %s AND ttl_strategy IS NOT NULL",
        (thread_id, owner),
    )
    if row is None:
        return None
    return {
        "strategy": row["ttl_strategy"],
        "ttl_minutes": row["ttl_minutes"],
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
    }


async def owned(conn: Conn, *, owner: str, thread_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Which of `thread_ids` exist and belong to `owner`."""
    rows = await fetch_all(
        conn,
        "SELECT thread_id FROM threads WHERE thread_id = ANY(%s) AND owner = %s",
        (thread_ids, owner),
    )
    return [row["thread_id"] for row in rows]


async def get(
    conn: Conn, *, owner: str, thread_id: uuid.UUID, for_update: bool = False
) -> StoredThread | None:
    """The thread if it exists and belongs to `owner`."""
    sql = f"SELECT {_PUBLIC} FROM threads WHERE thread_id = %s AND owner = %s"
    row = await fetch_one(conn, sql + " FOR UPDATE" if for_update else sql, (thread_id, owner))
    return _out(row) if row is not None else None


async def lock(conn: Conn, thread_id: uuid.UUID) -> None:
    """Lock the thread row for the transaction. Creating (with `get(for_update=True)`),
    finishing and cancelling a run take this lock before touching run rows, so they
    serialise in one order (no deadlock) and a status computed after it sees committed runs.
    (The lease sweep still updates run rows first: it races only with a fenced late finish.)"""
    await fetch_one(conn, "SELECT 1 FROM threads WHERE thread_id = %s FOR UPDATE", (thread_id,))


async def lock_idle(conn: Conn, thread_id: uuid.UUID, *, owner: str | None = None) -> bool:
    """Lock the thread row (as `lock`) if it exists, is `owner`'s (when given) and has no
    pending or running run: then no run can start on it until the transaction ends."""
    row = await fetch_one(
        conn,
        "SELECT 1 AS idle FROM threads t WHERE thread_id = %(t)s "
        "AND (%(owner)s::text IS NULL OR owner = %(owner)s) "
        "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id "
        "AND r.status IN ('pending', 'running')) FOR UPDATE OF t",
        {"t": thread_id, "owner": owner},
    )
    return row is not None


async def graph_id(conn: Conn, thread_id: uuid.UUID) -> str | None:
    """The graph that last ran on the thread (`metadata.graph_id`)."""
    row = await fetch_one(
        conn,
        "SELECT metadata ->> 'graph_id' AS graph_id FROM threads WHERE thread_id = %s",
        (thread_id,),
    )
    return None if row is None else row["graph_id"]


async def lock_expired(conn: Conn, thread_id: uuid.UUID) -> bool:
    """Lock the thread row if its TTL has passed and it has neither a pending or running
    run nor a pending approval (the sweeper's condition, checked under the lock)."""
    row = await fetch_one(
        conn,
        "SELECT 1 AS due FROM threads t WHERE thread_id = %(t)s AND expires_at <= now() "
        "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id "
        "AND r.status IN ('pending', 'running')) "
        "AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.thread_id = t.thread_id "
        "AND a.status = 'pending') FOR UPDATE OF t",
        {"t": thread_id},
    )
    return row is not None


async def swept(conn: Conn, thread_id: uuid.UUID, *, expired: bool) -> None:
    """Record a sweep of the thread: its retention is done and (`expired`) its TTL applied;
    its next run sets both again."""
    await fetch_one(
        conn,
        "UPDATE threads SET retention_due = false, "
        "expires_at = CASE WHEN %(expired)s THEN NULL ELSE expires_at END "
        "WHERE thread_id = %(t)s",
        {"t": thread_id, "expired": expired},
    )


async def exists_for_other_owner(conn: Conn, thread_id: uuid.UUID) -> bool:
    """Whether the id is taken at all (used to refuse creating over someone else's thread)."""
    row = await fetch_one(conn, "SELECT 1 AS taken FROM threads WHERE thread_id = %s", (thread_id,))
    return row is not None


async def patch_metadata(
    conn: AsyncConnection, *, owner: str, thread_id: uuid.UUID, metadata: Json
) -> StoredThread | None:
    """Merge `metadata` into the thread's metadata."""
    stmt = (
        update(T)
        .where(T.c.thread_id == thread_id, T.c.owner == owner)
        .values(metadata=T.c.metadata.op("||")(metadata), updated_at=func.now())
        .returning(*PUBLIC)
    )
    row = (await conn.execute(stmt)).first()
    return _out(row._mapping) if row is not None else None


async def delete_thread(conn: AsyncConnection, *, owner: str, thread_id: uuid.UUID) -> bool:
    """Delete the thread and every row of it, in the caller's transaction: the thread row
    (runs and approvals cascade) and the rows of every other table with a `thread_id`
    column (LangGraph's checkpoints, and whatever tables a saver adds). The thread row is
    locked first, as run creation locks it, so no run starts on it meanwhile."""
    locked = await conn.execute(
        select(T.c.thread_id)
        .where(T.c.thread_id == thread_id, T.c.owner == owner)
        .with_for_update()
    )
    if locked.first() is None:
        return False
    for table, data_type in await _tables_with_thread_id(conn):
        cast_to = "uuid" if data_type == "uuid" else "text"
        await conn.execute(
            text(f'DELETE FROM "{table}" WHERE thread_id = CAST(:t AS {cast_to})'),
            {"t": str(thread_id)},
        )
    await conn.execute(delete(T).where(T.c.thread_id == thread_id))
    return True


async def ids_for_assistant(
    conn: AsyncConnection, *, owner: str, assistant_id: uuid.UUID
) -> list[str]:
    """The caller's threads whose metadata names the assistant (`metadata.assistant_id`,
    which a run sets on its thread)."""
    stmt = select(T.c.thread_id).where(
        T.c.owner == owner, T.c.metadata["assistant_id"].astext == str(assistant_id)
    )
    return [str(tid) for tid in (await conn.execute(stmt)).scalars()]


async def _tables_with_thread_id(conn: AsyncConnection) -> list[tuple[str, str]]:
    """(table, type of its `thread_id`) for every table of the schema but `threads` and the
    tables whose rows cascade from it."""
    rows = await conn.execute(
        text(
            "SELECT c.table_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
            "AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' "
            "WHERE c.table_schema = current_schema() AND c.column_name = 'thread_id' "
            "AND c.table_name <> ALL(:skip) ORDER BY c.table_name"
        ),
        {"skip": list(_CASCADED)},
    )
    return [(row[0], row[1]) for row in rows.all()]


_CASCADED = ("threads", "runs", "approvals")
"""Deleted with the thread row (their foreign keys cascade)."""


def _filters(owner: str, query: ThreadSearch | ThreadCount) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = [T.c.owner == owner]
    if query.metadata:
        clauses.append(T.c.metadata.contains(query.metadata))
    if query.values:
        # Rows that match on their bounded copy, and rows that left out a key the filter
        # names (the caller checks those against their full values).
        clauses.append(or_(T.c["values"].contains(query.values), _unsure(query.values)))
    if query.status:
        clauses.append(T.c.status == query.status)
    if isinstance(query, ThreadSearch) and query.ids is not None:
        ids = []
        for raw in query.ids:
            try:
                ids.append(uuid.UUID(raw))
            except ValueError:
                continue
        clauses.append(T.c.thread_id.in_(ids))
    return and_(true(), *clauses)


def _unsure(values: Json) -> ColumnElement[bool]:
    """Rows whose copy of the values leaves out a key of `values` (or all of them)."""
    keys = ["", *values]
    return T.c.values_omitted.op("&&")(literal(keys, ARRAY(Text)))


def unsure(thread: StoredThread, values: Json) -> bool:
    """Whether `thread`'s row cannot tell alone if its values contain `values`."""
    omitted = set(thread["values_omitted"])
    return bool(omitted) and ("" in omitted or not omitted.isdisjoint(values))


async def search(
    conn: AsyncConnection, *, owner: str, query: ThreadSearch, limit: int, offset: int
) -> list[StoredThread]:
    """Threads matching the query, newest first unless asked otherwise; a `values` filter
    also yields the threads `unsure` about it, for the caller to check."""
    column = T.c[query.sort_by or "created_at"]
    order = column.asc() if query.sort_order == "asc" else column.desc()
    stmt = (
        select(*PUBLIC)
        .where(_filters(owner, query))
        .order_by(order, T.c.thread_id)
        .limit(limit)
        .offset(offset)
    )
    rows = (await conn.execute(stmt)).all()
    return [_out(row._mapping) for row in rows]


async def count(conn: AsyncConnection, *, owner: str, query: ThreadCount) -> int:
    """How many threads match (with a `values` filter: or are `unsure` about it)."""
    stmt = select(func.count()).select_from(T).where(_filters(owner, query))
    return int((await conn.execute(stmt)).scalar_one())


async def unsure_matches(
    conn: AsyncConnection, *, owner: str, query: ThreadCount
) -> list[StoredThread]:
    """The threads `count` counted that are `unsure` about its `values` filter."""
    stmt = select(*PUBLIC).where(_filters(owner, query), _unsure(query.values))
    return [_out(row._mapping) for row in (await conn.execute(stmt)).all()]


async def set_state(
    conn: Conn,
    thread_id: uuid.UUID,
    *,
    status: str,
    values: JsonValue = None,
    values_omitted: list[str] | None = None,
    interrupts: Interrupts | None = None,
    error: Json | None = None,
    metadata: Json | None = None,
    busy_if_queued: bool = False,
) -> bool:
    """Record the thread's status and, when given, a snapshot of its latest state (`values`:
    its bounded copy, without the keys in `values_omitted`).

    `busy_if_queued` (after a run ended, with the thread locked): the status is `busy`
    instead while the thread has pending or running runs. Returns whether it is `busy`.
    """
    row = await fetch_one(
        conn,
        _SET_STATE,
        {
            "thread_id": thread_id,
            "status": status,
            "queued": busy_if_queued,
            "error": jsonb(error),
            "snapshot": values is not None,
            "values": jsonb(values),
            "omitted": values_omitted or [],
            "interrupts": jsonb(interrupts or {}),
            "metadata": jsonb(metadata or {}),
        },
    )
    return row is not None and row["status"] == "busy"


_SET_STATE = """
    UPDATE threads SET
        status = CASE WHEN %(queued)s AND EXISTS (
                          SELECT 1 FROM runs WHERE thread_id = %(thread_id)s
                          AND status IN ('pending', 'running'))
                      THEN 'busy' ELSE %(status)s END,
        updated_at = now(), error = %(error)s,
        "values" = CASE WHEN %(snapshot)s AND "values" IS DISTINCT FROM %(values)s
                        THEN %(values)s ELSE "values" END,
        values_omitted = CASE WHEN %(snapshot)s THEN %(omitted)s::text[]
                         ELSE values_omitted END,
        interrupts = CASE WHEN %(snapshot)s THEN %(interrupts)s ELSE interrupts END,
        state_updated_at = CASE WHEN %(snapshot)s THEN now() ELSE state_updated_at END,
        metadata = metadata || %(metadata)s
    WHERE thread_id = %(thread_id)s
    RETURNING status
"""


async def copy(
    conn: AsyncConnection, *, owner: str, source: uuid.UUID, target: uuid.UUID
) -> StoredThread | None:
    """A new thread with the source's metadata and state snapshot."""
    cols = [T.c.metadata, T.c.config, T.c["values"], T.c.values_omitted, T.c.interrupts]
    src = select(
        literal(target, T.c.thread_id.type).label("thread_id"),
        T.c.owner,
        *cols,
        T.c.status,
    ).where(T.c.thread_id == source, T.c.owner == owner)
    stmt = insert(T).from_select(
        [
            "thread_id",
            "owner",
            "metadata",
            "config",
            "values",
            "values_omitted",
            "interrupts",
            "status",
        ],
        src,
    )
    result = await conn.execute(stmt.returning(*PUBLIC))
    row = result.first()
    return _out(row._mapping) if row is not None else None
