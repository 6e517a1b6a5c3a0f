"""Server-sent events: a run's events on the wire, in the official framing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine

from sse_starlette import EventSourceResponse, ServerSentEvent

from server.runs.events import END, RunEvent

log = logging.getLogger("trellis.http")


def run_stream_response(
    events: AsyncIterator[RunEvent],
    *,
    thread_id: str,
    run_id: str,
    heartbeat_seconds: float,
    end_event: bool = False,
    on_disconnect: Callable[[], Coroutine[object, object, None]] | None = None,
) -> EventSourceResponse:
    """An SSE response of `events`, with the headers the SDK uses to reconnect.

    A finished run's stream closes with an `end` event (`{"run_id", "status"}`) when
    `end_event` is set; the official server just closes it. When the client goes away
    before the run ends, `on_disconnect` runs (for `on_disconnect: cancel`).
    """

    async def frames() -> AsyncIterator[ServerSentEvent]:
        finished = False
        try:
            async for event in events:
                if event.event != END:
                    yield ServerSentEvent(data=event.data.decode(), event=event.event, id=event.id)
                elif end_event:
                    yield ServerSentEvent(data=event.data.decode(), event="end", id=event.id)
            finished = True
        finally:
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
        sep="\n",
    )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("on_disconnect handler failed", exc_info=task.exception())
