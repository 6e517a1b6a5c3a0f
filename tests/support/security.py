"""Servers for the security tests: real HTTP on loopback, one scratch database for the package."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from server.auth import api_keys
from server.core.settings import Settings
from server.db import api_key_rows
from server.db.engine import create_engine
from server.http.app import create_app
from tests.support.servers import TEST_GRAPHS, serve_in_loop

GENEROUS = "10000/minute"


def security_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings: generous limits and a Redis key prefix of their own unless overridden."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "graphs_config": TEST_GRAPHS,
        "log_level": "WARNING",
        "db_pool_max_size": 5,
        "db_pool_min_size": 1,
        "rate_limit_read": GENEROUS,
        "rate_limit_write": GENEROUS,
        "rate_limit_runs": GENEROUS,
        "rate_limit_auth_failures": GENEROUS,
        "rate_limit_key_prefix": f"trellis-test-{uuid.uuid4().hex[:8]}",
    }
    return Settings(**(values | overrides))


def serve_app(app: FastAPI) -> AbstractAsyncContextManager[str]:
    """Serve any ASGI app on a free loopback port in this event loop."""
    return serve_in_loop(app)


@asynccontextmanager
async def trellis(settings: Settings) -> AsyncIterator[str]:
    """A Trellis server with `settings`, over real HTTP."""
    async with serve_app(create_app(settings)) as url:
        yield url


async def create_key(
    settings: Settings, owner: str, scopes: tuple[str, ...] = ("read", "write")
) -> api_keys.NewKey:
    """Store a new API key directly in the database (the server must have migrated it)."""
    engine = create_engine(settings.model_copy(update={"db_pool_max_size": 1}))
    try:
        key = api_keys.generate(owner, scopes)
        async with engine.begin() as conn:
            await api_keys.store(conn, key)
        return key
    finally:
        await engine.dispose()


async def revoke_key(settings: Settings, key_id: str) -> None:
    """Revoke a key directly in the database."""
    engine = create_engine(settings.model_copy(update={"db_pool_max_size": 1}))
    try:
        async with engine.begin() as conn:
            await api_key_rows.revoke(conn, key_id)
    finally:
        await engine.dispose()
