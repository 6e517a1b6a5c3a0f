"""`STREAM_END_EVENT`: a finished run's stream closes with `end`, so the SDK need not ask.

By default Trellis frames streams like the official server, which just closes them; the
SDK then reads the run back after every stream to tell a finished run from a cut
connection. With the setting on, the stream's last event says the run is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from server.http.app import create_app
from tests.support.api import parse_sse
from tests.support.servers import serve_in_loop

Requests = list[tuple[str, str]]


@asynccontextmanager
async def serving(settings: Settings, *, end_event: bool) -> AsyncIterator[tuple[str, Requests]]:
    """A server with the setting on or off, and the requests it receives."""
    app = create_app(settings.model_copy(update={"stream_end_event": end_event}))
    seen: Requests = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append((scope["method"], scope["path"]))
        await app(scope, receive, send)

    async with serve_in_loop(recording) as url:
        yield url, seen


@pytest.fixture(params=[True, False], ids=["end-event", "official-framing"])
async def served(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[str, bool, Requests]]:
    async with serving(settings, end_event=request.param) as (url, seen):
        yield url, request.param, seen


@pytest.fixture
async def sdk(served: tuple[str, bool, Requests]) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=served[0], api_key=None)
    yield client
    await client.http.client.aclose()


async def test_the_sdk_reads_the_run_back_only_without_end(
    served: tuple[str, bool, Requests], sdk: LangGraphClient
) -> None:
    _, end_event, seen = served
    thread_id = (await sdk.threads.create())["thread_id"]
    parts = [p async for p in sdk.runs.stream(thread_id, "echo", input={"text": "e"})]
    run_id = parts[0].data["run_id"]
    events = [p.event for p in parts]
    values = ["metadata", "values", "values", "values"]
    assert events == ([*values, "end"] if end_event else values)
    if end_event:
        assert parts[-1].data == {"run_id": run_id, "status": "success"}
    read_back = seen.count(("GET", f"/threads/{thread_id}/runs/{run_id}"))
    assert read_back == (0 if end_event else 1)


async def test_a_failed_run_ends_with_error_then_end(
    served: tuple[str, bool, Requests], sdk: LangGraphClient
) -> None:
    _, end_event, _ = served
    thread_id = (await sdk.threads.create())["thread_id"]
    parts = [p async for p in sdk.runs.stream(thread_id, "approval", input={"topic": "explode"})]
    events = [p.event for p in parts]
    if end_event:
        assert events[-2:] == ["error", "end"]
        assert parts[-1].data == {"run_id": parts[0].data["run_id"], "status": "error"}
    else:
        assert events[-1] == "error"


async def test_rejoining_after_the_end_event_replays_nothing(settings: Settings) -> None:
    async with (
        serving(settings, end_event=True) as (url, _),
        httpx.AsyncClient(base_url=url, timeout=15) as http,
    ):
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "echo", "input": {"text": "r"}, "stream_resumable": True}
        async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as first:
            events, _ = parse_sse(await first.aread())
        assert events[-1].event == "end"
        path = f"/threads/{thread_id}/runs/{events[0].data['run_id']}/stream"
        async with asyncio.timeout(1):  # at once, not after waiting for more
            rejoined = await http.get(path, headers={"Last-Event-ID": events[-1].id or ""})
        assert parse_sse(rejoined.content)[0] == []
        replay = await http.get(path)
        assert [(e.event, e.data) for e in parse_sse(replay.content)[0]] == [
            (e.event, e.data) for e in events
        ]
