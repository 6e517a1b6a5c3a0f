"""Servers for the security tests: real HTTP on loopback, one scratch database for the package."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from server.app import create_app
from server.auth import api_keys
from server.db.engine import create_engine
from server.settings import Settings
from tests.support import TEST_GRAPHS

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


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    """Serve any ASGI app on a free loopback port in this event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


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
            await api_keys.revoke(conn, key_id)
    finally:
        await engine.dispose()
