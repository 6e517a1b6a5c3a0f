"""Runs on a thread and stateless runs: create, stream, wait, join, cancel."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from typing import Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse

from server.core.encoding import dumps
from server.core.errors import InvalidRequest, NotFound, RateLimited
from server.core.schemas import MAX_OFFSET, MAX_PAGE, RunCancel, RunCreate
from server.core.types import JsonValue, Run, RunStatus
from server.http.deps import OwnerDep, RunsDep, ServicesDep
from server.http.middleware.limits import RateLimits, rate_key
from server.http.routes import AS_RETURNED, CheckedRoute
from server.http.sse import run_stream_response
from server.runs.manager import RunManager
from server.services import Services

thread_runs = APIRouter(prefix="/threads/{thread_id}/runs", tags=["runs"], route_class=CheckedRoute)
stateless_runs = APIRouter(prefix="/runs", tags=["runs"], route_class=CheckedRoute)


def _location(response: Response, run: Run) -> None:
    response.headers["Content-Location"] = f"/threads/{run['thread_id']}/runs/{run['run_id']}"


async def _stream(
    runs: RunManager,
    services: Services,
    owner: str,
    thread_id: str | None,
    body: RunCreate,
) -> EventSourceResponse:
    run = await runs.create(owner, thread_id, body)

    async def cancel_on_disconnect() -> None:
        await runs.cancel(owner, run["thread_id"], run["run_id"], action="interrupt", wait=False)

    return run_stream_response(
        runs.stream(run["run_id"], just_created=True),
        thread_id=run["thread_id"],
        run_id=run["run_id"],
        heartbeat_seconds=services.settings.sse_heartbeat_seconds,
        resumable=body.stream_resumable,
        end_event=services.settings.stream_end_event,
        on_disconnect=cancel_on_disconnect if body.on_disconnect == "cancel" else None,
    )


def _wait_response(
    runs: RunManager, thread_id: str, run_id: str, keepalive: float
) -> StreamingResponse:
    """The run's final output; newlines keep the connection alive while it runs.

    Headers as the official server's (`api/runs.py` `wait_run`, `wait_run_stateless`):
    `Location` is where to join the run, `Content-Location` the run itself, a stateless
    run's temporary thread included."""

    async def body() -> AsyncIterator[bytes]:
        waiter = asyncio.ensure_future(runs.wait(run_id))
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=keepalive)
                if done:
                    break
                yield b"\n"
            _, output = waiter.result()
            yield dumps(output)
        finally:
            waiter.cancel()

    return StreamingResponse(
        body(),
        media_type="application/json",
        headers={
            "Location": f"/threads/{thread_id}/runs/{run_id}/join",
            "Content-Location": f"/threads/{thread_id}/runs/{run_id}",
        },
    )


@thread_runs.post("/stream")
async def stream_run(
    thread_id: str, body: RunCreate, runs: RunsDep, services: ServicesDep, owner: OwnerDep
) -> EventSourceResponse:
    """Create a run and stream its events as SSE."""
    return await _stream(runs, services, owner, thread_id, body)


@stateless_runs.post("/stream")
async def stream_stateless(
    body: RunCreate, runs: RunsDep, services: ServicesDep, owner: OwnerDep
) -> EventSourceResponse:
    """Create a run on a temporary thread and stream its events as SSE."""
    return await _stream(runs, services, owner, None, body)


@thread_runs.post("/wait")
async def wait_run(
    thread_id: str, body: RunCreate, runs: RunsDep, services: ServicesDep, owner: OwnerDep
) -> StreamingResponse:
    """Create a run and answer with its final values."""
    run = await runs.create(owner, thread_id, body, waited=True)
    keepalive = services.settings.wait_keepalive_seconds
    return _wait_response(runs, run["thread_id"], run["run_id"], keepalive)


@stateless_runs.post("/wait")
async def wait_stateless(
    body: RunCreate, runs: RunsDep, services: ServicesDep, owner: OwnerDep
) -> StreamingResponse:
    """Create a run on a temporary thread and answer with its final values."""
    run = await runs.create(owner, None, body, waited=True)
    keepalive = services.settings.wait_keepalive_seconds
    return _wait_response(runs, run["thread_id"], run["run_id"], keepalive)


@thread_runs.post("", response_model=AS_RETURNED)
async def create_run(
    thread_id: str, body: RunCreate, runs: RunsDep, owner: OwnerDep, response: Response
) -> Run:
    """Create a background run."""
    run = await runs.create(owner, thread_id, body)
    _location(response, run)
    return run


@stateless_runs.post("", response_model=AS_RETURNED)
async def create_stateless(body: RunCreate, runs: RunsDep, owner: OwnerDep) -> Run:
    """Create a background run on a temporary thread."""
    return await runs.create(owner, None, body)


@stateless_runs.post("/batch", response_model=AS_RETURNED)
async def create_batch(
    bodies: list[RunCreate], runs: RunsDep, owner: OwnerDep, request: Request
) -> Sequence[Run]:
    """Create several background runs on temporary threads."""
    if len(bodies) > 100:
        raise InvalidRequest("at most 100 runs per batch")
    # Each run counts against the runs rate limit: the request itself counted one.
    limits: RateLimits = request.app.state.rate_limits
    retry = await limits.hit("runs", rate_key(request.scope), cost=len(bodies) - 1)
    if retry is not None:
        raise RateLimited(
            f"rate limit exceeded for runs: a batch of {len(bodies)} runs; "
            f"retry in {math.ceil(retry)} s",
            retry,
        )
    return [await runs.create(owner, None, body) for body in bodies]


@thread_runs.get("", response_model=AS_RETURNED)
async def list_runs(
    thread_id: str,
    runs: RunsDep,
    owner: OwnerDep,
    limit: int = Query(default=10, ge=1, le=MAX_PAGE),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    status: RunStatus | None = None,
) -> Sequence[Run]:
    """The thread's runs, newest first."""
    return await runs.list(owner, thread_id, limit=limit, offset=offset, status=status)


@thread_runs.get("/{run_id}", response_model=AS_RETURNED)
async def get_run(thread_id: str, run_id: str, runs: RunsDep, owner: OwnerDep) -> Run:
    """One run."""
    return await runs.get(owner, thread_id, run_id)


@thread_runs.delete("/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, runs: RunsDep, owner: OwnerDep) -> Response:
    """Delete a finished run."""
    await runs.delete(owner, thread_id, run_id)
    return Response(status_code=204)


@thread_runs.get("/{run_id}/join", response_model=AS_RETURNED)
async def join_run(thread_id: str, run_id: str, runs: RunsDep, owner: OwnerDep) -> JsonValue:
    """Wait for the run to end and answer with its final values."""
    run = await runs.get(owner, thread_id, run_id)
    output: JsonValue
    _, output = await runs.wait(run["run_id"])
    return output


@thread_runs.get("/{run_id}/stream")
async def join_stream(
    thread_id: str,
    run_id: str,
    runs: RunsDep,
    services: ServicesDep,
    owner: OwnerDep,
    last_event_id: str | None = Header(default=None),
    cancel_on_disconnect: bool = False,
) -> EventSourceResponse:
    """Follow a run's events; with `Last-Event-ID`, only those after it (an unknown or
    malformed one: those after the newest event, as the official server)."""
    run = await runs.get(owner, thread_id, run_id)
    after = await runs.resume_point(run["run_id"], last_event_id)

    async def cancel() -> None:
        await runs.cancel(owner, thread_id, run_id, action="interrupt", wait=False)

    return run_stream_response(
        runs.stream(run["run_id"], after),
        thread_id=run["thread_id"],
        run_id=run["run_id"],
        heartbeat_seconds=services.settings.sse_heartbeat_seconds,
        resumable=bool((run.get("kwargs") or {}).get("stream_resumable")),
        end_event=services.settings.stream_end_event,
        on_disconnect=cancel if cancel_on_disconnect else None,
    )


@thread_runs.post("/{run_id}/cancel", response_model=AS_RETURNED)
async def cancel_run(
    thread_id: str,
    run_id: str,
    runs: RunsDep,
    owner: OwnerDep,
    wait: bool = False,
    action: Literal["interrupt", "rollback"] = "interrupt",
) -> Run:
    """Cancel a run; with `wait=1`, answer once it has stopped, with its final status."""
    return await runs.cancel(owner, thread_id, run_id, action=action, wait=wait)


@stateless_runs.post("/cancel", status_code=204)
async def cancel_many(
    body: RunCancel,
    runs: RunsDep,
    owner: OwnerDep,
    wait: bool = False,
    action: Literal["interrupt", "rollback"] = "interrupt",
) -> Response:
    """Cancel the listed runs of a thread."""
    if body.thread_id is None or not body.run_ids:
        raise NotFound("give thread_id and run_ids to cancel")
    for run_id in body.run_ids:
        await runs.cancel(owner, body.thread_id, run_id, action=action, wait=wait)
    return Response(status_code=204)
