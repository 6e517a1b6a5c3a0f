"""The client's share of a run: the official SDK against a server that does no work.

`benchmarks.server` compares Trellis with the graph invoked in-process, where no client,
HTTP or SSE exists. This server answers the SDK's three requests of a streamed run
(create thread, stream, then the run it reads back) with fixed bytes, so the time it
measures is what the SDK and uvicorn cost, with nothing of Trellis: no server can be
faster than this over HTTP with this client.

With `--fastapi` the same fixed answers come from FastAPI routes, the stream through
sse-starlette: what Trellis' web stack costs before Trellis does any work.

    uv run python -m benchmarks.floor serve PORT [--fastapi]   # what `floor_server()` starts
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from tests.support.servers import ROOT, free_port

_THREAD = orjson.dumps(
    {
        "thread_id": "00000000-0000-0000-0000-000000000001",
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
        "metadata": {},
        "status": "idle",
        "config": {},
        "values": None,
    }
)
_RUN = orjson.dumps({"run_id": "r", "thread_id": "t", "status": "success"})
_FRAMES = [
    ("metadata", '{"run_id": "r", "attempt": 1}'),
    ("values", '{"text": "hi"}'),
    ("values", '{"text": "hi", "steps": ["n1"]}'),
    ("values", '{"text": "hi", "steps": ["n1", "n2"]}'),
]
_EVENTS = [
    f"event: {event}\ndata: {data}\nid: {index}-0\n\n".encode()
    for index, (event, data) in enumerate(_FRAMES, 1)
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Fixed answers: a thread, a run's SSE stream (as Trellis frames it), the run."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"].endswith("/runs/stream"):
        location = b"/threads/t/runs/r"
        headers = [(b"content-type", b"text/event-stream"), (b"location", location + b"/stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for event in _EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = _THREAD if scope["method"] == "POST" else _RUN
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def fastapi_app() -> FastAPI:
    """The same fixed answers from FastAPI routes, the stream through sse-starlette."""
    web = FastAPI()

    @web.post("/threads")
    async def create_thread() -> Response:
        return Response(_THREAD, media_type="application/json")

    @web.post("/threads/{thread_id}/runs/stream")
    async def stream(thread_id: str, request: Request) -> EventSourceResponse:
        await request.body()

        async def frames() -> AsyncIterator[ServerSentEvent]:
            for index, (event, data) in enumerate(_FRAMES, 1):
                yield ServerSentEvent(data=data, event=event, id=f"{index}-0")

        headers = {"Location": "/threads/t/runs/r/stream", "Content-Location": "/threads/t/runs/r"}
        return EventSourceResponse(frames(), headers=headers, sep="\n")

    @web.get("/threads/{thread_id}/runs/{run_id}")
    async def get_run(thread_id: str, run_id: str) -> Response:
        return Response(_RUN, media_type="application/json")

    @web.get("/ok")
    async def ok() -> Response:
        return Response(b"{}", media_type="application/json")

    return web


@contextmanager
def floor_server(*, fastapi: bool = False) -> Iterator[str]:
    """The do-nothing server in its own process (as Trellis runs in the benchmark)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor", "serve", str(port)]
        + (["--fastapi"] if fastapi else []),
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # bounded: 30 s to start
            try:
                httpx.get(url + "/ok", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"]:
        sys.exit(__doc__)
    served = fastapi_app() if "--fastapi" in sys.argv[3:] else app
    uvicorn.run(served, host="127.0.0.1", port=int(sys.argv[2]), log_config=None, lifespan="off")
