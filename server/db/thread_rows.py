"""Thread rows: create, read, search and status bookkeeping, always scoped to an owner."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import cast

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.schemas import ThreadCount, ThreadSearch
from server.core.types import Interrupts, Json, JsonValue
from server.core.types import Thread as ThreadRow
from server.db.engine import Conn, columns, fetch_one, jsonb, plain
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
]


_PUBLIC = columns(*PUBLIC)


def _out(row: RowMapping | Mapping[str, object]) -> ThreadRow:
    data = plain(row)
    data.pop("owner", None)
    if data.get("values") is None:
        data["values"] = {}
    return cast(ThreadRow, data)


async def create(
    conn: Conn,
    *,
    owner: str,
    thread_id: uuid.UUID,
    metadata: Json,
    if_exists: str = "raise",
) -> ThreadRow | None:
    """Insert a thread; returns None when the id is taken (the caller decides what that means)."""
    row = await fetch_one(
        conn,
        "INSERT INTO threads (thread_id, owner, metadata) VALUES (%s, %s, %s) "
        f"ON CONFLICT (thread_id) DO NOTHING RETURNING {_PUBLIC}",
        (thread_id, owner, jsonb(metadata)),
    )
    return _out(row) if row is not None else None


async def get(
    conn: Conn, *, owner: str, thread_id: uuid.UUID, for_update: bool = False
) -> ThreadRow | None:
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


async def exists_for_other_owner(conn: Conn, thread_id: uuid.UUID) -> bool:
    """Whether the id is taken at all (used to refuse creating over someone else's thread)."""
    row = await fetch_one(conn, "SELECT 1 AS taken FROM threads WHERE thread_id = %s", (thread_id,))
    return row is not None


async def patch_metadata(
    conn: AsyncConnection, *, owner: str, thread_id: uuid.UUID, metadata: Json
) -> ThreadRow | None:
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
    """Delete the thread row (its runs cascade); checkpoints are the caller's job."""
    stmt = delete(T).where(T.c.thread_id == thread_id, T.c.owner == owner).returning(T.c.thread_id)
    return (await conn.execute(stmt)).first() is not None


def _filters(owner: str, query: ThreadSearch | ThreadCount) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = [T.c.owner == owner]
    if query.metadata:
        clauses.append(T.c.metadata.contains(query.metadata))
    if query.values:
        clauses.append(T.c["values"].contains(query.values))
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


async def search(conn: AsyncConnection, *, owner: str, query: ThreadSearch) -> list[ThreadRow]:
    """Threads matching the query, newest first unless asked otherwise; with `select`, only
    the keys it names (the SDK calls those `Thread` too)."""
    column = T.c[query.sort_by or "created_at"]
    order = column.asc() if query.sort_order == "asc" else column.desc()
    stmt = (
        select(*PUBLIC)
        .where(_filters(owner, query))
        .order_by(order, T.c.thread_id)
        .limit(query.limit)
        .offset(query.offset)
    )
    rows = (await conn.execute(stmt)).all()
    out = [_out(row._mapping) for row in rows]
    if query.select:
        keep = set(query.select)
        out = [cast(ThreadRow, {k: v for k, v in item.items() if k in keep}) for item in out]
    return out


async def count(conn: AsyncConnection, *, owner: str, query: ThreadCount) -> int:
    """How many threads match."""
    stmt = select(func.count()).select_from(T).where(_filters(owner, query))
    return int((await conn.execute(stmt)).scalar_one())


async def set_state(
    conn: Conn,
    thread_id: uuid.UUID,
    *,
    status: str,
    values: JsonValue = None,
    interrupts: Interrupts | None = None,
    error: Json | None = None,
    metadata: Json | None = None,
    busy_if_queued: bool = False,
) -> bool:
    """Record the thread's status and, when given, a snapshot of its latest state.

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
        "values" = CASE WHEN %(snapshot)s THEN %(values)s ELSE "values" END,
        interrupts = CASE WHEN %(snapshot)s THEN %(interrupts)s ELSE interrupts END,
        state_updated_at = CASE WHEN %(snapshot)s THEN now() ELSE state_updated_at END,
        metadata = metadata || %(metadata)s
    WHERE thread_id = %(thread_id)s
    RETURNING status
"""


async def copy(
    conn: AsyncConnection, *, owner: str, source: uuid.UUID, target: uuid.UUID
) -> ThreadRow | None:
    """A new thread with the source's metadata and state snapshot."""
    cols = [T.c.metadata, T.c.config, T.c["values"], T.c.interrupts]
    src = select(
        literal(target, T.c.thread_id.type).label("thread_id"),
        T.c.owner,
        *cols,
        T.c.status,
    ).where(T.c.thread_id == source, T.c.owner == owner)
    stmt = insert(T).from_select(
        ["thread_id", "owner", "metadata", "config", "values", "interrupts", "status"], src
    )
    result = await conn.execute(stmt.returning(*PUBLIC))
    row = result.first()
    return _out(row._mapping) if row is not None else None
