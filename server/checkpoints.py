"""Direct operations on LangGraph's checkpoint tables that the saver does not offer."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


async def copy_thread(conn: AsyncConnection, source: str, target: str) -> None:
    """Copy every checkpoint, blob and write of `source` to `target`."""
    for table in TABLES:
        columns = (
            await conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = :t "
                    "AND column_name <> 'thread_id' ORDER BY ordinal_position"
                ),
                {"t": table},
            )
        ).scalars().all()
        cols = ", ".join(f'"{c}"' for c in columns)
        await conn.execute(
            text(
                f"INSERT INTO {table} (thread_id, {cols}) "
                f"SELECT :target, {cols} FROM {table} WHERE thread_id = :source"
            ),
            {"source": source, "target": target},
        )
