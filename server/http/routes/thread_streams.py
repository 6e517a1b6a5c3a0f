"""A thread's streams: every run of a thread, as langgraph-api 0.16 serves them.

* `GET /threads/{thread_id}/stream`: the runs' events as they are published, framed like
  a run's stream, with `metadata` events when each run starts and ends (`run_done`);
  `stream_modes` (`run_modes`, `lifecycle`, `state_update`), `Last-Event-ID` to resume.
* `POST /threads/{thread_id}/commands`: one protocol command (`run.start`, ...), JSON in
  and out (`server.runs.thread_protocol.ThreadCommands`).
* `POST /threads/{thread_id}/stream/events`: the thread's protocol events as SSE,
  filtered by an `EventStreamRequest` body; `since` resumes after a `seq`.
* `WebSocket /threads/{thread_id}/stream/events`: both at once: commands in, their
  responses and the events of `subscription.subscribe` out.

The websocket is authenticated and rate-limited here: the security middlewares serve
HTTP requests only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from sse_starlette import EventSourceResponse
from starlette.responses import Response

from server.auth.authenticators import Authenticator, Unauthenticated
from server.auth.identity import Identity, set_current
from server.core.encoding import UnsafeJson, parse_json
from server.core.errors import InvalidRequest, NotFound
from server.core.types import Json
from server.http.deps import OwnerDep, RunsDep, ServicesDep
from server.http.middleware.authorize import ThreadAuthorizer, command_item
from server.http.responses import JSONResponse
from server.http.routes import CheckedRoute
from server.http.sse import counted, sse_frame
from server.runs.events import END
from server.runs.manager import RunManager
from server.runs.thread_protocol import (
    EventFilter,
    ProtocolProjector,
    ThreadCommands,
    error,
    malformed,
    thread_owner,
)
from server.runs.thread_stream import follow_thread, thread_exists

log = logging.getLogger("trellis.http")

router = APIRouter(prefix="/threads/{thread_id}", tags=["thread streams"], route_class=CheckedRoute)

THREAD_STREAM_MODES = ("lifecycle", "run_modes", "state_update")
"""What `GET /threads/{id}/stream` can follow (langgraph-api's `ThreadStreamMode`)."""

REPLAY_BUFFER = 10_000
"""Events a websocket keeps for subscriptions made after them (langgraph-api's default)."""

_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}

_COMMAND_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["id", "method"],
                    "properties": {
                        "id": {"type": "integer"},
                        "method": {
                            "type": "string",
                            "enum": [
                                "run.start",
                                "input.respond",
                                "agent.getTree",
                                "subscription.subscribe",
                                "subscription.unsubscribe",
                                "subscription.reconnect",
                            ],
                        },
                        "params": {"type": "object"},
                    },
                }
            }
        },
    }
}
_EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["channels"],
                    "properties": {
                        "channels": {"type": "array", "items": {"type": "string"}},
                        "namespaces": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "string"}},
                        },
                        "depth": {"type": "integer", "minimum": 0},
                        "since": {"type": "integer", "minimum": 0},
                    },
                }
            }
        },
    }
}


_STREAM_ID = re.compile(r"^\d{1,16}(-(\d{1,16}|\*))?$")
"""A `Last-Event-ID` the official thread stream accepts (`utils.validate_stream_id`, which
takes any number of digits; Trellis' ids have at most 16)."""


def _stream_cursor(last_event_id: str | None) -> str | None:
    """The thread stream's cursor from `Last-Event-ID`: refused with the official 422
    (`api/threads.py` `join_thread_stream`) unless it is a Redis stream id; `-` (from the
    start) is no cursor, and `<ms>` or `<ms>-*` stand for `<ms>-0`."""
    if last_event_id is None or last_event_id == "-":
        return None
    if not _STREAM_ID.match(last_event_id):
        raise InvalidRequest("Invalid last-event-id: must be a valid Redis stream ID")
    ms, _, seq = last_event_id.partition("-")
    return f"{ms}-{seq if seq not in ('', '*') else 0}"


def _frame(event: str, data: bytes, event_id: str | None) -> bytes:
    return sse_frame(event, data, event_id, sep=b"\n")


def _sse(frames: AsyncIterator[bytes], heartbeat: float) -> EventSourceResponse:
    return EventSourceResponse(counted(frames), headers=_SSE_HEADERS, ping=heartbeat, sep="\n")


async def _json_body(request: Request) -> object:
    """The body `BodyGuard` parsed and checked (it answers 422 for what the policy refuses)."""
    try:
        return await request.json()
    except ValueError:
        return _INVALID


_INVALID = object()


@router.get("/stream", response_class=EventSourceResponse)
async def join_thread_stream(
    thread_id: str,
    runs: RunsDep,
    services: ServicesDep,
    owner: OwnerDep,
    last_event_id: str | None = Header(default=None),
    stream_modes: str | None = Query(default=None, description="Comma-separated modes."),
    stream_mode: Annotated[list[str] | None, Query(description="As the SDK sends them.")] = None,
) -> EventSourceResponse:
    """Follow every run of the thread: those active now and those created later (with
    `Last-Event-ID`: every retained event after it). `run_modes` sends the runs' events,
    `lifecycle` only the `metadata` events that start and end each run."""
    raw = stream_modes.split(",") if stream_modes else list(stream_mode or ["run_modes"])
    modes = {mode.strip() for part in raw for mode in part.split(",") if mode.strip()}
    for mode in sorted(modes):
        if mode not in THREAD_STREAM_MODES:
            raise InvalidRequest(f"Invalid stream mode: {mode}")
    after = _stream_cursor(last_event_id or None)
    if not await thread_exists(runs, owner, thread_id):
        raise NotFound(f"thread {thread_id!r} not found")

    async def frames() -> AsyncIterator[bytes]:
        async for run, event in follow_thread(
            runs, owner, thread_id, history=last_event_id == "-", after=after
        ):
            if event.event == END:
                data = orjson.dumps({"status": "run_done", "run_id": run.run_id})
                yield _frame("metadata", data, event.id)
            elif event.event == "metadata" or "run_modes" in modes:
                yield _frame(event.event, event.data, event.id)

    return _sse(frames(), services.settings.sse_heartbeat_seconds)


@router.post("/commands", openapi_extra=_COMMAND_BODY)
async def thread_command(
    thread_id: str, request: Request, runs: RunsDep, owner: OwnerDep
) -> Response:
    """One protocol command on the thread (`run.start` creates the thread if need be);
    answered `{"type": "success", "id", "result", "meta"}` or `{"type": "error", "id",
    "error", "message"}`."""
    payload = await _json_body(request)
    if payload is _INVALID:
        return JSONResponse({"detail": "Invalid JSON body"}, status_code=400)
    bad = malformed(payload)
    if bad is not None:
        return JSONResponse(bad, status_code=400)
    assert isinstance(payload, dict)
    if await thread_owner(runs, owner, thread_id) == "other":
        raise NotFound(f"thread {thread_id!r} not found")
    return JSONResponse(await ThreadCommands(runs, owner, thread_id).handle(payload))


@router.post("/stream/events", response_class=EventSourceResponse, openapi_extra=_EVENTS_BODY)
async def thread_events(
    thread_id: str, request: Request, runs: RunsDep, services: ServicesDep, owner: OwnerDep
) -> Response:
    """The thread's protocol events that match the body's filter, from its first retained
    run on (after `since`), live until the client goes away."""
    payload = await _json_body(request)
    if payload is _INVALID:
        return JSONResponse({"detail": "Invalid JSON body"}, status_code=400)
    try:
        subscription = EventFilter.parse(payload)
    except InvalidRequest as exc:
        return JSONResponse({"detail": exc.detail}, status_code=400)
    if not await thread_exists(runs, owner, thread_id):
        raise NotFound(f"thread {thread_id!r} not found")

    async def frames() -> AsyncIterator[bytes]:
        projector = ProtocolProjector()
        async for item in follow_thread(runs, owner, thread_id, history=True):
            for event in projector.feed(item):
                if subscription.matches(event):
                    yield _frame(event["method"], orjson.dumps(event), str(event["seq"]))

    return _sse(frames(), services.settings.sse_heartbeat_seconds)


async def _authenticate(websocket: WebSocket) -> Identity | None:
    """The caller, as the HTTP middlewares would resolve it; None (socket closed) if refused."""
    authenticator: Authenticator | None = getattr(websocket.app.state, "authenticator", None)
    if authenticator is None:
        await websocket.close(code=1011, reason="authentication is not configured")
        return None
    try:
        identity = await authenticator.authenticate(websocket.scope)
    except Unauthenticated as exc:
        await websocket.close(code=1008, reason=exc.reason[:120])
        return None
    limits = getattr(websocket.app.state, "rate_limits", None)
    if limits is not None:
        key = f"id:{identity.identity}" if identity.is_authenticated else "ip:websocket"
        if websocket.client is not None and not identity.is_authenticated:
            key = f"ip:{websocket.client.host}"
        if await limits.hit("read", key) is not None:
            await websocket.close(code=1013, reason="too many read requests")
            return None
    set_current(identity)
    return identity


async def _deny(websocket: WebSocket, status: int, detail: str, code: str) -> None:
    """Refuse the handshake: an HTTP `status` with a JSON error where the server can send
    one (the ASGI denial-response extension), else a close before accept (a 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            JSONResponse({"detail": detail, "code": code}, status_code=status)
        )
    else:
        await websocket.close(code=1008, reason=detail[:120])


def _may(identity: Identity, permission: str) -> bool:
    if identity.kind != "api_key":
        return True
    return permission in identity.permissions or "*" in identity.permissions


@router.websocket("/stream/events")
async def thread_socket(websocket: WebSocket, thread_id: str) -> None:
    """Commands in; their responses and subscribed events out."""
    identity = await _authenticate(websocket)
    if identity is None:
        return
    if not _may(identity, "read"):
        await websocket.close(code=1008, reason="this API key lacks the 'read' scope")
        return
    runs: RunManager = websocket.app.state.services.runs
    owner = identity.identity
    try:
        if not await thread_exists(runs, owner, thread_id):
            await websocket.close(code=1008, reason="thread not found")
            return
    except InvalidRequest:
        await websocket.close(code=1008, reason="thread not found")
        return
    # Custom auth: `threads.read` before the socket opens (the official server's thread
    # stream checks it as it joins, `Threads.Stream.check_thread_stream_auth`).
    authorizer: ThreadAuthorizer | None = getattr(websocket.app.state, "thread_authorizer", None)
    if authorizer is not None:
        refused = await authorizer.check(identity, "read", thread_id)
        if refused is not None:
            await _deny(websocket, *refused)
            return
    await websocket.accept()
    commands = ThreadCommands(runs, owner, thread_id)
    buffer: deque[Json] = deque(maxlen=REPLAY_BUFFER)
    sending = asyncio.Lock()

    async def send(message: Json) -> None:
        await websocket.send_text(orjson.dumps(message).decode())

    async def pump() -> None:
        projector = ProtocolProjector()
        async for item in follow_thread(runs, owner, thread_id, history=True):
            for event in projector.feed(item):
                async with sending:
                    buffer.append(event)
                    commands.seq = event["seq"]
                    if any(sub.matches(event) for sub in commands.subscriptions.values()):
                        await send(event)
        with contextlib.suppress(Exception):
            await websocket.close(code=1011, reason="thread stream ended")

    source = asyncio.create_task(pump())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
            raw = message.get("text")
            if raw is None:  # a binary frame: say so, and keep the socket
                async with sending:
                    await send(
                        error(
                            None,
                            "invalid_argument",
                            "Protocol commands must be JSON text frames, not binary frames.",
                        )
                    )
                continue
            try:  # the JSON policy of request bodies: nothing stored that cannot be read back
                payload = parse_json(raw.encode("utf-8", "surrogatepass"), ("message",))
            except UnsafeJson as exc:
                async with sending:
                    await send(
                        error(
                            None, "invalid_argument", f"Protocol commands must be valid JSON: {exc}"
                        )
                    )
                continue
            bad = malformed(payload)
            if bad is not None:
                async with sending:
                    await send(bad)
                continue
            assert isinstance(payload, dict)  # what `malformed` lets through
            method = payload["method"]
            refused = None
            if method in ("run.start", "input.respond") and authorizer is not None:
                # `threads.create_run` on the command's run arguments, as for `POST .../commands`.
                refused = await authorizer.check(
                    identity, "create_run", thread_id, command_item(payload)
                )
            if method in ("run.start", "input.respond") and not _may(identity, "write"):
                response = error(payload["id"], "forbidden", "this API key lacks 'write'")
            elif refused is not None:
                status, detail, code = refused
                response = error(payload["id"], "forbidden" if status == 403 else code, detail)
            elif method == "subscription.subscribe":
                async with sending:
                    response = await commands.handle(payload)
                    if response["type"] == "success":
                        sub = commands.subscriptions[response["result"]["subscription_id"]]
                        replayed = [event for event in buffer if sub.matches(event)]
                        for event in replayed:
                            await send(event)
                        response["result"]["replayed_events"] = len(replayed)
                    await send(response)
                continue
            else:
                try:
                    response = await commands.handle(payload)
                except NotFound as exc:
                    response = error(payload["id"], "not_found", str(exc.detail))
            async with sending:
                await send(response)
    except WebSocketDisconnect:
        pass
    finally:
        source.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await source
