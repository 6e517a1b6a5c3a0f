"""The SQLAlchemy async engine for Trellis' own tables."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from server.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """A bounded, health-checked engine; statements time out server-side."""
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_max_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={
            "prepare_threshold": None,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )


def iso(value: datetime | None) -> str | None:
    """A timestamp as the API shows it."""
    return value.isoformat() if value is not None else None


def plain(row: RowMapping | Mapping[str, Any]) -> dict[str, Any]:
    """A row as an API object: timestamps in ISO format, UUIDs as strings."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = key
        if isinstance(value, datetime):
            out[name] = value.isoformat()
        elif hasattr(value, "hex") and type(value).__name__ == "UUID":
            out[name] = str(value)
        else:
            out[name] = value
    return out
