"""Approval-test overrides of the session fixtures in tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from server.core.settings import Settings


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    # Rate limits live in the shared Redis, keyed per identity: a suite issuing many runs a
    # minute would be throttled by its own traffic (as tests/integration/conftest.py says).
    return settings.model_copy(update={"rate_limit_enabled": False})


@pytest.fixture
async def http(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the test server, for the routes the SDK does not know."""
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        yield client
