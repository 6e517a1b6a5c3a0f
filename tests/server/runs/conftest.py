"""Fixtures of the run machinery's tests that talk to the machine's Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.asyncio.Redis]:
    """The machine's Redis, for event-bus tests; their keys are removed afterwards."""
    connection: redis.asyncio.Redis = redis.asyncio.Redis.from_url(REDIS_URL)
    prefix = f"trellis-test-{uuid.uuid4().hex}"
    connection.test_prefix = prefix  # type: ignore[attr-defined]
    connection.test_buses = []  # type: ignore[attr-defined]
    yield connection
    for made in connection.test_buses:  # type: ignore[attr-defined]
        await made.close()
    keys = [key async for key in connection.scan_iter(match=prefix + "*")]
    if keys:
        await connection.delete(*keys)
    await connection.aclose()
