"""Who owns a row: the one module that answers "does this owner see this id?" outside a
resource's own queries (security logging, authorization by a resource's metadata)."""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

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
