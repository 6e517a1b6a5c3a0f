"""A Trellis server whose `langgraph.json` carries a `store` key, for the store tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from psycopg.rows import dict_row

from server.core.settings import Settings
from server.db.owner_store import scope_of
from server.http.app import create_app
from tests.support.servers import TEST_GRAPHS, serve_in_loop

ECHO = f"{TEST_GRAPHS.parent / 'simple.py'}:echo"


def write_config(folder: Path, store: object, graphs: dict[str, str] | None = None) -> Path:
    """A `langgraph.json` in `folder` serving the test echo graph (and `graphs`) with `store`."""
    path = folder / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"echo": ECHO, **(graphs or {})}, "store": store}))
    return path


@asynccontextmanager
async def store_server(
    settings: Settings,
    folder: Path,
    store: object,
    graphs: dict[str, str] | None = None,
    **overrides: Any,
) -> AsyncIterator[LangGraphClient]:
    """The official client on a server of its own whose `langgraph.json` has `store`."""
    config = write_config(folder, store, graphs)
    app = create_app(settings.model_copy(update={"graphs_config": config, **overrides}))
    async with serve_in_loop(app) as url:
        client = get_client(url=url, api_key=None)
        try:
            yield client
        finally:
            await client.http.client.aclose()


def row(settings: Settings, namespace: tuple[str, ...], key: str) -> dict[str, Any] | None:
    """The raw `store` row of the anonymous owner's item (expired ones included)."""
    prefix = ".".join((*scope_of("anonymous"), *namespace))
    with psycopg.connect(settings.psycopg_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT *, expires_at <= NOW() AS expired FROM store WHERE prefix = %s AND key = %s",
            (prefix, key),
        ).fetchone()


def existing(settings: Settings, namespace: tuple[str, ...], key: str) -> dict[str, Any]:
    """`row`, which must exist."""
    found = row(settings, namespace, key)
    assert found is not None, f"no row for {namespace}/{key}"
    return found
