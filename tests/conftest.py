"""Fixtures: a fresh Postgres database per test session and a real Trellis server over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from server.http.app import create_app
from tests.support.servers import TEST_GRAPHS, create_database, drop_database, serve_in_loop


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        graphs_config=TEST_GRAPHS,
        log_level="WARNING",
        db_pool_max_size=10,
        rate_limit_enabled=False,  # limits have their own tests (test_limits_and_checkpoints.py)
    )


@pytest.fixture(scope="session")
async def server_url(settings: Settings) -> AsyncIterator[str]:
    """A Trellis server on a loopback port, in this event loop, spoken to over real HTTP."""
    async with serve_in_loop(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(server_url: str) -> AsyncIterator[LangGraphClient]:
    """The official langgraph-sdk client pointed at the test server."""
    lg = get_client(url=server_url, api_key=None)
    yield lg
    await lg.http.client.aclose()


@pytest.fixture
async def http(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the test server, for the routes the SDK does not know."""
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def security_db() -> Iterator[str]:
    """A database of its own for the tests that serve their own app (auth modes, limits)."""
    url = create_database()
    yield url
    drop_database(url)
