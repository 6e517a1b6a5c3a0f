"""Assistant rows and their versions; system assistants (owner NULL) are visible to everyone."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, delete, func, or_, select, update
from sqlalchemy import Row as SqlRow
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.schemas import AssistantCount, AssistantSearch
from server.core.types import Assistant as AssistantRow
from server.core.types import AssistantVersion as VersionRow
from server.core.types import Json
from server.db.engine import Conn, columns, fetch_one, plain
from server.db.tables import Assistant, AssistantVersion

A: Table = Assistant.__table__  # type: ignore[assignment]
V: Table = AssistantVersion.__table__  # type: ignore[assignment]
PUBLIC = [
    A.c.assistant_id,
    A.c.graph_id,
    A.c.config,
    A.c.context,
    A.c.metadata,
    A.c.name,
    A.c.description,
    A.c.version,
    A.c.created_at,
    A.c.updated_at,
]
VERSION_PUBLIC = [
    V.c.assistant_id,
    V.c.graph_id,
    V.c.config,
    V.c.context,
    V.c.metadata,
    V.c.name,
    V.c.description,
    V.c.version,
    V.c.created_at,
]


_PUBLIC = columns(*PUBLIC)


def _visible(owner: str) -> ColumnElement[bool]:
    return or_(A.c.owner.is_(None), A.c.owner == owner)


def _out(row: SqlRow[tuple[object, ...]]) -> AssistantRow:
    return cast(AssistantRow, plain(row._mapping))


def _version(row: SqlRow[tuple[object, ...]]) -> VersionRow:
    return cast(VersionRow, plain(row._mapping))


async def upsert_system(
    conn: AsyncConnection, *, graph_id: str, assistant_id: uuid.UUID, description: str | None
) -> None:
    """Make sure the system assistant of a served graph exists (idempotent)."""
    values = {
        "assistant_id": assistant_id,
        "graph_id": graph_id,
        "owner": None,
        "name": graph_id,
        "description": description,
        "metadata": {"created_by": "system"},
    }
    await conn.execute(pg_insert(A).values(**values).on_conflict_do_nothing())
    version = {k: v for k, v in values.items() if k != "owner"} | {"version": 1}
    await conn.execute(pg_insert(V).values(**version).on_conflict_do_nothing())


async def create(
    conn: AsyncConnection,
    *,
    owner: str,
    assistant_id: uuid.UUID,
    graph_id: str,
    config: Json,
    context: Json,
    metadata: Json,
    name: str,
    description: str | None,
) -> AssistantRow | None:
    """Insert an assistant and its version 1; None when the id is taken."""
    values = {
        "assistant_id": assistant_id,
        "graph_id": graph_id,
        "config": config,
        "context": context,
        "metadata": metadata,
        "name": name,
        "description": description,
    }
    stmt = (
        pg_insert(A)
        .values(owner=owner, **values)
        .on_conflict_do_nothing(index_elements=[A.c.assistant_id])
        .returning(*PUBLIC)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    await conn.execute(pg_insert(V).values(version=1, **values))
    return _out(row)


async def get(conn: Conn, *, owner: str, assistant_id: uuid.UUID) -> AssistantRow | None:
    """The assistant if visible to `owner`."""
    row = await fetch_one(
        conn,
        f"SELECT {_PUBLIC} FROM assistants WHERE assistant_id = %s "
        "AND (owner IS NULL OR owner = %s)",
        (assistant_id, owner),
    )
    return cast(AssistantRow, plain(row)) if row is not None else None


async def is_system(conn: AsyncConnection, assistant_id: uuid.UUID) -> bool:
    """Whether the assistant is a system assistant from `langgraph.json`."""
    stmt = select(A.c.owner.is_(None)).where(A.c.assistant_id == assistant_id)
    return bool((await conn.execute(stmt)).scalar())


async def new_version(
    conn: AsyncConnection, *, owner: str, assistant_id: uuid.UUID, changes: Json
) -> AssistantRow | None:
    """Write a new version with `changes` over the current one and make it current."""
    current = (
        await conn.execute(
            select(*PUBLIC)
            .where(A.c.assistant_id == assistant_id, A.c.owner == owner)
            .with_for_update()
        )
    ).first()
    if current is None:
        return None
    data = dict(current._mapping)
    latest = (
        await conn.execute(select(func.max(V.c.version)).where(V.c.assistant_id == assistant_id))
    ).scalar_one()
    version = int(latest or 0) + 1
    fields = ("graph_id", "config", "context", "metadata", "name", "description")
    merged = {k: changes[k] if changes.get(k) is not None else data[k] for k in fields}
    await conn.execute(pg_insert(V).values(assistant_id=assistant_id, version=version, **merged))
    row = (
        await conn.execute(
            update(A)
            .where(A.c.assistant_id == assistant_id)
            .values(version=version, updated_at=func.now(), **merged)
            .returning(*PUBLIC)
        )
    ).first()
    return _out(row) if row is not None else None


async def set_latest(
    conn: AsyncConnection, *, owner: str, assistant_id: uuid.UUID, version: int
) -> AssistantRow | None:
    """Make an existing version the current one; None if the assistant or version is missing."""
    ver = (
        await conn.execute(
            select(*VERSION_PUBLIC).where(V.c.assistant_id == assistant_id, V.c.version == version)
        )
    ).first()
    if ver is None:
        return None
    v = ver._mapping
    row = (
        await conn.execute(
            update(A)
            .where(A.c.assistant_id == assistant_id, A.c.owner == owner)
            .values(
                version=version,
                updated_at=func.now(),
                **{k: v[k] for k in ("graph_id", "config", "context", "metadata", "name")},
                description=v["description"],
            )
            .returning(*PUBLIC)
        )
    ).first()
    return _out(row) if row is not None else None


async def versions(
    conn: AsyncConnection,
    *,
    owner: str,
    assistant_id: uuid.UUID,
    metadata: Json,
    limit: int,
    offset: int,
) -> list[VersionRow] | None:
    """The assistant's versions, newest first; None if the assistant is not visible."""
    if await get(conn, owner=owner, assistant_id=assistant_id) is None:
        return None
    stmt = select(*VERSION_PUBLIC).where(V.c.assistant_id == assistant_id)
    if metadata:
        stmt = stmt.where(V.c.metadata.contains(metadata))
    stmt = stmt.order_by(V.c.version.desc()).limit(limit).offset(offset)
    return [_version(row) for row in (await conn.execute(stmt)).all()]


async def delete_assistant(conn: AsyncConnection, *, owner: str, assistant_id: uuid.UUID) -> bool:
    """Delete a user assistant and its versions."""
    stmt = (
        delete(A)
        .where(A.c.assistant_id == assistant_id, A.c.owner == owner)
        .returning(A.c.assistant_id)
    )
    return (await conn.execute(stmt)).first() is not None


def _filters(
    owner: str, query: AssistantSearch | AssistantCount, graphs: Sequence[str]
) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = [_visible(owner), A.c.graph_id.in_(list(graphs))]
    if query.metadata:
        clauses.append(A.c.metadata.contains(query.metadata))
    if query.graph_id:
        clauses.append(A.c.graph_id == query.graph_id)
    if query.name:
        clauses.append(A.c.name.ilike(f"%{query.name}%"))
    return and_(*clauses)


async def search(
    conn: AsyncConnection, *, owner: str, query: AssistantSearch, graphs: Sequence[str]
) -> list[AssistantRow]:
    """Assistants of the served `graphs` matching the query, newest first unless asked
    otherwise; with `select`, only the keys it names (the SDK calls those `Assistant` too)."""
    column = A.c[query.sort_by or "created_at"]
    order = column.asc() if query.sort_order == "asc" else column.desc()
    stmt = (
        select(*PUBLIC)
        .where(_filters(owner, query, graphs))
        .order_by(order, A.c.assistant_id)
        .limit(query.limit)
        .offset(query.offset)
    )
    out = [_out(row) for row in (await conn.execute(stmt)).all()]
    if query.select:
        keep = set(query.select)
        out = [cast(AssistantRow, {k: v for k, v in item.items() if k in keep}) for item in out]
    return out


async def count(
    conn: AsyncConnection, *, owner: str, query: AssistantCount, graphs: Sequence[str]
) -> int:
    """How many assistants of the served `graphs` match."""
    stmt = select(func.count()).select_from(A).where(_filters(owner, query, graphs))
    return int((await conn.execute(stmt)).scalar_one())


async def unserved(conn: AsyncConnection, *, graphs: Sequence[str]) -> dict[str, list[str]]:
    """Every owner's assistants whose graph is not among `graphs`, by graph id, oldest first."""
    stmt = (
        select(A.c.graph_id, A.c.assistant_id)
        .where(A.c.graph_id.not_in(list(graphs)))
        .order_by(A.c.graph_id, A.c.created_at, A.c.assistant_id)
    )
    found: dict[str, list[str]] = {}
    for graph_id, assistant_id in (await conn.execute(stmt)).all():
        found.setdefault(str(graph_id), []).append(str(assistant_id))
    return found
