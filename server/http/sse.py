"""Server-sent events: a run's events on the wire, in the official framing.

The official server writes each frame itself (`langgraph_api.sse.json_to_sse`): `event:`,
then `data:`, then `id:` only for a run created `stream_resumable`, each line ended by
CRLF and the frame by a blank CRLF line. sse-starlette's `ServerSentEvent` writes `id:`
first, so frames are written here byte for byte instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent

from server.core.metrics import SSE_OPEN
from server.runs.events import END, RunEvent

log = logging.getLogger("trellis.http")

SEP = "\r\n"
"""The official server's line ending on the SSE wire."""


def _field(value: str) -> bytes:
    return value.replace("\r", "").replace("\n", "").encode()


def sse_frame(event: str, data: bytes, event_id: str | None = None, sep: bytes = b"\r\n") -> bytes:
    """One SSE frame as the official server writes it: event, data, then id when given
    (run streams end lines with CRLF; the thread-stream protocol with `\\n`)."""
    frame = b"event: " + _field(event) + sep + b"data: " + data + sep
    if event_id is not None:
        frame += b"id: " + _field(event_id) + sep
    return frame + sep


async def counted(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`frames`, counted in `trellis_sse_streams_open` while they are being sent."""
    SSE_OPEN.inc()
    try:
        async for frame in frames:
            yield frame
    finally:
        SSE_OPEN.dec()
        close = getattr(frames, "aclose", None)
        if close is not None:  # now, as when `frames` were the response's own
            await close()


def stream_failed(run_id: str, exc: Exception, last: str | None) -> bytes:
    """The `error` event that ends a stream the server could not go on with (the run itself
    goes on): says where to resume."""
    where = f" after event {last} (Last-Event-ID)" if last is not None else ""
    message = (
        f"the stream of run {run_id} was interrupted ({type(exc).__name__}); "
        f"the run goes on: join it, or stream it again{where}"
    )
    return orjson.dumps({"error": "StreamInterrupted", "message": message})


def _heartbeat() -> ServerSentEvent:
    return ServerSentEvent(comment="heartbeat", sep=SEP)


def run_stream_response(
    events: AsyncIterator[RunEvent],
    *,
    thread_id: str,
    run_id: str,
    heartbeat_seconds: float,
    resumable: bool = False,
    end_event: bool = False,
    on_disconnect: Callable[[], Coroutine[object, object, None]] | None = None,
) -> EventSourceResponse:
    """An SSE response of `events`, with the headers the SDK uses to reconnect.

    Frames carry their event id only when the run is `resumable`, as the official server's.
    A finished run's stream closes with an `end` event (`{"run_id", "status"}`) when
    `end_event` is set; the official server just closes it. When the client goes away
    before the run ends, `on_disconnect` runs (for `on_disconnect: cancel`).
    """

    async def frames() -> AsyncIterator[bytes]:
        finished = False
        SSE_OPEN.inc()
        last: str | None = None
        try:
            try:
                async for event in events:
                    event_id = event.id if resumable else None
                    last = event.id
                    if event.event != END:
                        yield sse_frame(event.event, event.data, event_id)
                    elif end_event:
                        yield sse_frame("end", event.data, event_id)
            except Exception as exc:  # e.g. PoolTimeout: the stream has started, no 500 now
                log.warning(
                    "run stream failed",
                    extra={"run_id": run_id, "error": type(exc).__name__, "detail": str(exc)},
                )
                finished = True  # the server ended it, not the client: no `on_disconnect`
                # No `id:` on it, as the official `sse.py` `stream_response` writes it: the
                # frame is no event of the run, so a client must not resume after it.
                resume = last if resumable else None
                yield sse_frame("error", stream_failed(run_id, exc, resume))
                return
            finished = True
        finally:
            SSE_OPEN.dec()
            if not finished and on_disconnect is not None:
                task = asyncio.get_running_loop().create_task(on_disconnect())
                task.add_done_callback(_log_failure)

    return EventSourceResponse(
        frames(),
        headers={
            "Location": f"/threads/{thread_id}/runs/{run_id}/stream",
            "Content-Location": f"/threads/{thread_id}/runs/{run_id}",
            "Cache-Control": "no-store",
        },
        ping=heartbeat_seconds,
        sep=SEP,
        ping_message_factory=_heartbeat,
    )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("on_disconnect handler failed", exc_info=task.exception())
