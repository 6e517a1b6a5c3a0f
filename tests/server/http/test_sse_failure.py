"""A stream whose source fails after it started (a `PoolTimeout` while asking whether the run
is over) ends with an `error` event the SDK reads, whose message names the id to resume from,
and is not taken for a client that went away. The frame itself carries no `id:` (official
`langgraph_api/sse.py` `stream_response` writes `json_to_sse(b"error", exc)`, without an id)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
from langgraph_sdk import get_client
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.http.sse import run_stream_response
from server.runs.events import RunEvent


async def failing() -> AsyncIterator[RunEvent]:
    yield RunEvent("1-0", "metadata", b'{"run_id": "r"}')
    yield RunEvent("2-0", "values", b'{"n": 1}')
    raise PoolTimeout("couldn't get a connection after 10.00 sec")


def app(disconnects: list[str]) -> Starlette:
    async def on_disconnect() -> None:
        disconnects.append("cancel")

    async def stream(request: Request) -> Response:
        return run_stream_response(
            failing(),
            thread_id="t",
            run_id="r",
            heartbeat_seconds=10,
            resumable=True,
            on_disconnect=on_disconnect,
        )

    return Starlette(routes=[Route("/threads/t/runs/r/stream", stream)])


async def test_a_failing_stream_ends_with_an_error_event_the_sdk_reads() -> None:
    disconnects: list[str] = []
    transport = httpx.ASGITransport(app=app(disconnects))
    client = get_client(url="http://test", api_key=None)
    await client.http.client.aclose()
    client.http.client = httpx.AsyncClient(transport=transport, base_url="http://test")
    try:
        parts = [part async for part in client.runs.join_stream("t", "r")]
    finally:
        await client.http.client.aclose()
    assert [part.event for part in parts] == ["metadata", "values", "error"]
    error = parts[-1].data
    assert error["error"] == "StreamInterrupted"
    assert "PoolTimeout" in error["message"]
    assert "2-0" in error["message"]  # where to resume from
    assert disconnects == []  # the server ended it: `on_disconnect: cancel` does not fire


async def test_the_error_frame_carries_no_id() -> None:
    transport = httpx.ASGITransport(app=app([]))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        raw = (await http.get("/threads/t/runs/r/stream")).content
    frames = [frame for frame in raw.split(b"\r\n\r\n") if frame]
    last = frames[-1].split(b"\r\n")
    assert last[0] == b"event: error"
    assert orjson.loads(last[1].removeprefix(b"data: "))["error"] == "StreamInterrupted"
    assert len(last) == 2  # event and data only, as the official server writes it
    assert b"id: 2-0" in frames[-2]  # the event before it keeps its id (a resumable run)
