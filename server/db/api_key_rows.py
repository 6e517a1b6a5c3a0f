"""API key rows: only hashes are stored; `key_id` is the public lookup prefix."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple, TypedDict, cast

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.tables import ApiKey

K: Table = ApiKey.__table__  # type: ignore[assignment]


class StoredKey(NamedTuple):
    """What checking a presented key needs of its row."""

    owner: str
    key_hash: str
    scopes: list[str]
    revoked_at: datetime | None


class ApiKeyRow(TypedDict):
    """A stored key as `trellis keys list` shows it (never its hash)."""

    key_id: str
    owner: str
    name: str | None
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


async def insert(
    conn: AsyncConnection,
    *,
    key_id: str,
    owner: str,
    name: str | None,
    key_hash: str,
    scopes: list[str],
) -> None:
    """Insert a key's hash."""
    await conn.execute(
        K.insert().values(key_id=key_id, owner=owner, name=name, key_hash=key_hash, scopes=scopes)
    )


async def find(conn: AsyncConnection, key_id: str) -> StoredKey | None:
    """The stored key with this public id, or None."""
    row = (
        await conn.execute(
            select(K.c.owner, K.c.key_hash, K.c.scopes, K.c.revoked_at).where(K.c.key_id == key_id)
        )
    ).first()
    return None if row is None else StoredKey(*row)


async def mark_used(conn: AsyncConnection, key_id: str, resolution_seconds: int) -> None:
    """Record a use, unless one was recorded within `resolution_seconds`."""
    await conn.execute(
        update(K)
        .where(
            K.c.key_id == key_id,
            or_(
                K.c.last_used_at.is_(None),
                K.c.last_used_at < func.now() - timedelta(seconds=resolution_seconds),
            ),
        )
        .values(last_used_at=func.now())
    )


async def list_keys(conn: AsyncConnection, owner: str | None = None) -> list[ApiKeyRow]:
    """Keys (never their hashes), newest first."""
    stmt = select(
        K.c.key_id,
        K.c.owner,
        K.c.name,
        K.c.scopes,
        K.c.created_at,
        K.c.last_used_at,
        K.c.revoked_at,
    ).order_by(K.c.created_at.desc())
    if owner is not None:
        stmt = stmt.where(K.c.owner == owner)
    return [cast(ApiKeyRow, dict(row._mapping)) for row in (await conn.execute(stmt)).all()]


async def revoke(conn: AsyncConnection, key_id: str) -> datetime | None:
    """Revoke a key; returns when it was revoked (earlier revocations are kept), None if unknown."""
    stmt = (
        update(K)
        .where(K.c.key_id == key_id)
        .values(revoked_at=func.coalesce(K.c.revoked_at, func.now()))
        .returning(K.c.revoked_at)
    )
    value: datetime | None = (await conn.execute(stmt)).scalar()
    return value
