"""Trellis API keys: generated once, stored only as SHA-256 hashes, looked up by a public id.

A key reads `trellis_<key_id>_<secret>`: `key_id` (12 base32 characters) is stored in
clear for lookup and shown by `trellis keys list`; `secret` carries 256 bits of
entropy, so a fast hash is the right one (there is nothing to brute-force) and the
comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict, cast

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.tables import ApiKey

K: Table = ApiKey.__table__  # type: ignore[assignment]
PREFIX = "trellis_"
DEFAULT_SCOPES = ("read", "write")
"""`read`: GET, search, count, history, join. `write`: everything that creates or changes."""
KNOWN_SCOPES = frozenset({"read", "write"})
LAST_USED_RESOLUTION_SECONDS = 60
"""`last_used_at` is written at most once a minute per key, not on every request."""


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: `secret_key` is shown once and never stored."""

    key_id: str
    owner: str
    scopes: tuple[str, ...]
    secret_key: str


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of checking a presented key."""

    key_id: str | None
    owner: str | None = None
    scopes: tuple[str, ...] = ()
    revoked: bool = False

    @property
    def valid(self) -> bool:
        """Whether the key is known, matches, and is not revoked."""
        return self.owner is not None and not self.revoked


class ApiKeyRow(TypedDict):
    """A stored key as `trellis keys list` shows it (never its hash)."""

    key_id: str
    owner: str
    name: str | None
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate(owner: str, scopes: tuple[str, ...] = DEFAULT_SCOPES) -> NewKey:
    """A new random key for `owner` (not yet stored)."""
    key_id = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:12]
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, owner, scopes, f"{PREFIX}{key_id}_{secret}")


def parse_key_id(key: str) -> str | None:
    """The public id inside a presented key, or None if it is not shaped like a Trellis key."""
    if not key.startswith(PREFIX) or len(key) > 200:
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not key_id.isalnum() or not secret:
        return None
    return key_id


async def store(conn: AsyncConnection, key: NewKey, *, name: str | None = None) -> None:
    """Insert a generated key (its hash only)."""
    await conn.execute(
        K.insert().values(
            key_id=key.key_id,
            owner=key.owner,
            name=name,
            key_hash=hash_key(key.secret_key),
            scopes=list(key.scopes),
        )
    )


async def check(conn: AsyncConnection, presented: str) -> KeyCheck:
    """Verify a presented key; records `last_used_at` (coarsely) for valid keys."""
    key_id = parse_key_id(presented)
    if key_id is None:
        return KeyCheck(None)
    row = (
        await conn.execute(
            select(K.c.owner, K.c.key_hash, K.c.scopes, K.c.revoked_at).where(K.c.key_id == key_id)
        )
    ).first()
    # Hash and compare even when the id is unknown, so timing does not tell ids apart.
    expected = row.key_hash if row is not None else hash_key(PREFIX)
    matches = hmac.compare_digest(hash_key(presented), expected)
    if row is None or not matches:
        return KeyCheck(key_id)
    if row.revoked_at is not None:
        return KeyCheck(key_id, row.owner, tuple(row.scopes), revoked=True)
    await conn.execute(
        update(K)
        .where(
            K.c.key_id == key_id,
            or_(
                K.c.last_used_at.is_(None),
                K.c.last_used_at < func.now() - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS),
            ),
        )
        .values(last_used_at=func.now())
    )
    return KeyCheck(key_id, row.owner, tuple(row.scopes))


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
