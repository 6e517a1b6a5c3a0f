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

from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import api_key_rows as rows

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
    await rows.insert(
        conn,
        key_id=key.key_id,
        owner=key.owner,
        name=name,
        key_hash=hash_key(key.secret_key),
        scopes=list(key.scopes),
    )


async def check(conn: AsyncConnection, presented: str) -> KeyCheck:
    """Verify a presented key; records `last_used_at` (coarsely) for valid keys."""
    key_id = parse_key_id(presented)
    if key_id is None:
        return KeyCheck(None)
    row = await rows.find(conn, key_id)
    # Hash and compare even when the id is unknown, so timing does not tell ids apart.
    expected = row.key_hash if row is not None else hash_key(PREFIX)
    matches = hmac.compare_digest(hash_key(presented), expected)
    if row is None or not matches:
        return KeyCheck(key_id)
    if row.revoked_at is not None:
        return KeyCheck(key_id, row.owner, tuple(row.scopes), revoked=True)
    await rows.mark_used(conn, key_id, LAST_USED_RESOLUTION_SECONDS)
    return KeyCheck(key_id, row.owner, tuple(row.scopes))
