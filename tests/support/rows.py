"""What the database holds of a thread, counted table by table."""

from __future__ import annotations

import psycopg

from server.core.settings import Settings


def rows_per_table(settings: Settings, thread_id: str) -> dict[str, int]:
    """How many rows of the thread each table with a `thread_id` column holds (found in
    `information_schema`, so a table a later feature adds is counted too)."""
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
            "AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' "
            "WHERE c.table_schema = current_schema() AND c.column_name = 'thread_id'"
        ).fetchall()
        counts = {}
        for (table,) in tables:
            row = conn.execute(
                f'SELECT count(*) FROM "{table}" WHERE thread_id::text = %s', (thread_id,)
            ).fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return counts
