"""Embedded defaults: a local Postgres for `trellis serve` on a machine that has none.

Only used when `DATABASE_URL` was not set and the default address does not
answer; the server says so in its log. Data lives under `embedded_data_dir`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg

from server.core.settings import Settings

log = logging.getLogger("trellis")


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether a Postgres answers at `url`."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def ensure_postgres(settings: Settings) -> Settings:
    """The settings to use: unchanged if Postgres answers, else pointing at an embedded one."""
    if reachable(settings.psycopg_url):
        return settings
    if "database_url" in settings.model_fields_set:
        raise SystemExit(
            "trellis: no Postgres answers at DATABASE_URL; start it or unset DATABASE_URL "
            "to use an embedded one"
        )
    import pgserver

    data = Path(settings.embedded_data_dir) / "postgres"
    data.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data, cleanup_mode="stop")  # type: ignore[attr-defined]
    url = str(server.get_uri())
    log.warning(
        "no Postgres at the default address; started an embedded one",
        extra={"data_dir": str(data)},
    )
    return settings.model_copy(update={"database_url": url})
