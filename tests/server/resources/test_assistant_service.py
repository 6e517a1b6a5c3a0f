"""An assistant whose graph left `langgraph.json`: hidden from search and count, a 404 naming
the missing graph when read or run, listed once in the log at startup, and still the
owner's to delete (as the official server: it scopes assistant reads to its graphs)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from server.core.settings import Settings
from server.http.app import create_app
from tests.support.servers import TEST_GRAPHS, scratch_database, serve_in_loop


def config(tmp_path: Path, *graphs: str) -> Path:
    spec = {"echo": "simple.py:echo", "chat": "extra.py:chat"}
    path = tmp_path / f"langgraph-{'-'.join(graphs)}.json"
    base = TEST_GRAPHS.parent
    path.write_text(json.dumps({"graphs": {g: str(base / spec[g]) for g in graphs}}))
    return path


async def test_an_assistant_whose_graph_was_removed_is_hidden_and_named_on_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with scratch_database() as database_url:

        def settings(graphs_config: Path) -> Settings:
            return Settings(
                environment="test",
                database_url=database_url,
                graphs_config=graphs_config,
                log_level="WARNING",
                rate_limit_enabled=False,
            )

        async with (
            serve_in_loop(create_app(settings(config(tmp_path, "echo", "chat")))) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            created = await http.post("/assistants", json={"graph_id": "chat", "name": "mine"})
            assert created.status_code == 200, created.text
            mine = created.json()["assistant_id"]

        with caplog.at_level(logging.WARNING, logger="trellis"):
            async with (
                serve_in_loop(create_app(settings(config(tmp_path, "echo")))) as url,
                httpx.AsyncClient(base_url=url) as http,
            ):
                found = (await http.post("/assistants/search", json={"limit": 100})).json()
                counted = (await http.post("/assistants/count", json={})).json()
                got = await http.get(f"/assistants/{mine}")
                schemas = await http.get(f"/assistants/{mine}/schemas")
                run = await http.post("/runs/wait", json={"assistant_id": mine, "input": {}})
                deleted = await http.delete(f"/assistants/{mine}")
                gone = await http.get(f"/assistants/{mine}")

    assert [a["graph_id"] for a in found] == ["echo"]
    assert counted == 1
    for response in (got, schemas):
        assert response.status_code == 404
        detail = response.json()["detail"]
        assert f"assistant '{mine}' uses graph 'chat', which this server does not serve" in detail
        assert "lists: echo" in detail
    assert run.status_code == 404
    assert "graph 'chat'" in run.json()["detail"]
    assert deleted.status_code in (200, 204)
    assert gone.status_code == 404
    [line] = [
        r.getMessage() for r in caplog.records if r.__dict__.get("event") == "unserved_assistants"
    ]
    assert line.startswith("2 assistants use graphs that are not in langgraph.json")
    assert "graph 'chat': " in line
    assert mine in line
