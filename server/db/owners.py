"""Who owns a row: the one module that answers "does this owner see this id?" outside a
resource's own queries (security logging, authorization by a resource's metadata)."""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.types import JsonObject

Resource = Literal["thread", "run", "assistant"]
"""The kinds of row that carry an owner and are addressed by id in a URL."""

_OWNER_SQL: dict[Resource, str] = {
    "thread": "SELECT owner FROM threads WHERE thread_id = :id",
    "run": "SELECT owner FROM runs WHERE run_id = :id",
    "assistant": "SELECT owner FROM assistants WHERE assistant_id = :id",
}


async def owner_of(conn: AsyncConnection, resource: Resource, ident: uuid.UUID) -> str | None:
    """The owner of a thread, run or assistant; None when it does not exist (or has none)."""
    found = (await conn.execute(text(_OWNER_SQL[resource]), {"id": ident})).first()
    return None if found is None else found[0]


Described = Literal["thread", "assistant"]
"""The kinds of row whose metadata authorization handlers' filters are checked against."""

_METADATA_SQL: dict[Described, str] = {
    "thread": "SELECT metadata FROM threads WHERE thread_id = :id AND owner = :owner",
    "assistant": (
        "SELECT metadata FROM assistants WHERE assistant_id = :id "
        "AND (owner IS NULL OR owner = :owner)"
    ),
}


async def metadata_of(
    conn: AsyncConnection, resource: Described, ident: uuid.UUID, owner: str
) -> JsonObject | None:
    """The metadata of a thread or assistant `owner` sees (its own, or a system assistant);
    None when there is no such row for this owner."""
    found: JsonObject | None = (
        await conn.execute(text(_METADATA_SQL[resource]), {"id": ident, "owner": owner})
    ).scalar()
    return found
