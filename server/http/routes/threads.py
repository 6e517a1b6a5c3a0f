"""Threads and their state: create, read, search, copy, state, update and history."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Response
from langgraph.errors import InvalidUpdateError

from server.core.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from server.core.ids import parse_uuid, require_uuid, uuid7
from server.core.schemas import (
    CheckpointRef,
    HistoryQuery,
    StateAtCheckpoint,
    StateUpdate,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
)
from server.db import run_rows
from server.db import thread_rows as rows
from server.db.checkpoints import copy_thread
from server.graph_host.registry import LoadedGraph
from server.graph_host.snapshot import empty_state, snapshot_json, thread_snapshot
from server.http.deps import OwnerDep, ServicesDep
from server.services import Services

router = APIRouter(prefix="/threads", tags=["threads"])


async def _thread(services: Services, owner: str, thread_id: str) -> dict[str, Any]:
    tid = require_uuid(thread_id, "thread")
    async with services.engine.connect() as conn:
        thread = await rows.get(conn, owner=owner, thread_id=tid)
    if thread is None:
        raise NotFound(f"thread {thread_id[:80]!r} not found")
    return thread


def _graph_of(services: Services, thread: dict[str, Any]) -> LoadedGraph | None:
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    return services.registry.get(graph_id) if isinstance(graph_id, str) else None


def _config(thread_id: str, ref: CheckpointRef | None = None, checkpoint_id: str | None = None):  # type: ignore[no-untyped-def]
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if ref is not None:
        configurable["checkpoint_ns"] = ref.checkpoint_ns
        if ref.checkpoint_id:
            configurable["checkpoint_id"] = ref.checkpoint_id
        if ref.checkpoint_map:
            configurable["checkpoint_map"] = ref.checkpoint_map
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


@router.post("")
async def create_thread(body: ThreadCreate, services: ServicesDep, owner: OwnerDep) -> Any:
    """Create a thread (optionally with a given id)."""
    thread_id = uuid7()
    if body.thread_id is not None:
        parsed = parse_uuid(body.thread_id)
        if parsed is None:
            raise InvalidRequest("thread_id must be a UUID")
        thread_id = parsed
    async with services.pool.connection() as conn:  # one statement: autocommit
        created = await rows.create(conn, owner=owner, thread_id=thread_id, metadata=body.metadata)
        if created is not None:
            return created
        existing = await rows.get(conn, owner=owner, thread_id=thread_id)
    if body.if_exists == "do_nothing" and existing is not None:
        return existing
    raise AlreadyExists(f"thread {thread_id} already exists")


@router.post("/search")
async def search_threads(
    body: ThreadSearch, services: ServicesDep, owner: OwnerDep, response: Response
) -> Any:
    """Threads matching metadata, values, ids or status."""
    async with services.engine.connect() as conn:
        found = await rows.search(conn, owner=owner, query=body)
    if len(found) == body.limit:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return found


@router.post("/count")
async def count_threads(body: ThreadCount, services: ServicesDep, owner: OwnerDep) -> int:
    """How many threads match."""
    async with services.engine.connect() as conn:
        return await rows.count(conn, owner=owner, query=body)


@router.get("/{thread_id}")
async def get_thread(thread_id: str, services: ServicesDep, owner: OwnerDep) -> Any:
    """One thread with its status and latest values."""
    return await _thread(services, owner, thread_id)


@router.patch("/{thread_id}")
async def patch_thread(
    thread_id: str, body: ThreadPatch, services: ServicesDep, owner: OwnerDep
) -> Any:
    """Merge metadata into a thread."""
    tid = require_uuid(thread_id, "thread")
    async with services.engine.begin() as conn:
        updated = await rows.patch_metadata(
            conn, owner=owner, thread_id=tid, metadata=body.metadata
        )
    if updated is None:
        raise NotFound(f"thread {thread_id[:80]!r} not found")
    return updated


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, services: ServicesDep, owner: OwnerDep) -> Response:
    """Delete a thread, its runs and its checkpoints; active runs are cancelled first."""
    thread = await _thread(services, owner, thread_id)
    async with services.engine.connect() as conn:
        active = await run_rows.active_for_thread(conn, uuid.UUID(thread["thread_id"]))
    for run in active:
        await services.runs.cancel(owner, thread_id, run["run_id"], action="interrupt", wait=True)
    async with services.engine.begin() as conn:
        await rows.delete_thread(conn, owner=owner, thread_id=uuid.UUID(thread["thread_id"]))
    await services.checkpointer.adelete_thread(thread["thread_id"])
    return Response(status_code=204)


@router.post("/{thread_id}/copy")
async def copy(thread_id: str, services: ServicesDep, owner: OwnerDep) -> Any:
    """A new thread with a copy of this thread's metadata and checkpoints."""
    source = await _thread(services, owner, thread_id)
    target = uuid7()
    async with services.engine.begin() as conn:
        created = await rows.copy(
            conn, owner=owner, source=uuid.UUID(source["thread_id"]), target=target
        )
        await copy_thread(conn, source["thread_id"], str(target))
    return created


@router.get("/{thread_id}/state")
async def get_state(
    thread_id: str, services: ServicesDep, owner: OwnerDep, subgraphs: bool = False
) -> Any:
    """The thread's latest state."""
    thread = await _thread(services, owner, thread_id)
    loaded = _graph_of(services, thread)
    if loaded is None:
        return empty_state()
    snapshot = await loaded.graph.aget_state(_config(thread["thread_id"]), subgraphs=subgraphs)
    return snapshot_json(snapshot)


async def _state_at(
    services: Services, owner: str, thread_id: str, ref: CheckpointRef, subgraphs: bool
) -> Any:
    thread = await _thread(services, owner, thread_id)
    loaded = _graph_of(services, thread)
    if loaded is None:
        raise NotFound(f"checkpoint {ref.checkpoint_id!r} not found")
    config = _config(thread["thread_id"], ref)
    if await services.checkpointer.aget_tuple(config) is None:
        raise NotFound(f"checkpoint {ref.checkpoint_id!r} not found")
    snapshot = await loaded.graph.aget_state(config, subgraphs=subgraphs)
    return snapshot_json(snapshot)


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: str,
    checkpoint_id: str,
    services: ServicesDep,
    owner: OwnerDep,
    subgraphs: bool = False,
) -> Any:
    """The thread's state at a checkpoint."""
    ref = CheckpointRef(checkpoint_id=checkpoint_id)
    return await _state_at(services, owner, thread_id, ref, subgraphs)


@router.post("/{thread_id}/state/checkpoint")
async def post_state_at(
    thread_id: str, body: StateAtCheckpoint, services: ServicesDep, owner: OwnerDep
) -> Any:
    """The thread's state at a checkpoint given as an object (namespaces included)."""
    return await _state_at(services, owner, thread_id, body.checkpoint, body.subgraphs)


@router.post("/{thread_id}/state")
async def update_state(
    thread_id: str, body: StateUpdate, services: ServicesDep, owner: OwnerDep
) -> Any:
    """Write values as if `as_node` produced them; with `as_node: "__copy__"`, fork a checkpoint."""
    thread = await _thread(services, owner, thread_id)
    if thread["status"] == "busy":
        raise Conflict(f"thread {thread_id} is busy; wait for its run to finish")
    loaded = _graph_of(services, thread)
    if loaded is None:
        raise InvalidRequest(f"thread {thread_id} has not run a graph yet; nothing to update")
    config = _config(thread["thread_id"], body.checkpoint, body.checkpoint_id)
    if "checkpoint_id" in config["configurable"] and (
        await services.checkpointer.aget_tuple(config) is None
    ):
        raise NotFound(f"checkpoint {config['configurable']['checkpoint_id']!r} not found")
    try:
        new_config = await loaded.graph.aupdate_state(config, body.values, as_node=body.as_node)
    except (InvalidUpdateError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"cannot update state: {exc}") from exc
    values, interrupts, has_next = await thread_snapshot(loaded.graph, thread["thread_id"])
    async with services.engine.begin() as conn:
        await rows.set_state(
            conn,
            uuid.UUID(thread["thread_id"]),
            status="interrupted" if interrupts or has_next else "idle",
            values=values,
            interrupts=interrupts,
        )
        if services.approvals is not None:  # a fork can leave pending approvals behind
            await services.approvals.on_state_updated(
                conn, uuid.UUID(thread["thread_id"]), interrupts
            )
    configurable = new_config["configurable"]
    return {
        "checkpoint": {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            "checkpoint_id": configurable["checkpoint_id"],
        },
        "configurable": configurable,
        "checkpoint_id": configurable["checkpoint_id"],
    }


async def _history(
    services: Services, owner: str, thread_id: str, query: HistoryQuery
) -> list[Any]:
    thread = await _thread(services, owner, thread_id)
    loaded = _graph_of(services, thread)
    if loaded is None:
        return []
    before = query.before
    before_config = None
    if isinstance(before, str):
        before_config = _config(thread["thread_id"], checkpoint_id=before)
    elif before is not None:
        before_config = _config(thread["thread_id"], before)
    return [
        snapshot_json(snapshot)
        async for snapshot in loaded.graph.aget_state_history(
            _config(thread["thread_id"], query.checkpoint),
            filter=query.metadata,
            before=before_config,
            limit=query.limit,
        )
    ]


@router.post("/{thread_id}/history")
async def post_history(
    thread_id: str, body: HistoryQuery, services: ServicesDep, owner: OwnerDep
) -> Any:
    """Past states, newest first."""
    return await _history(services, owner, thread_id, body)


@router.get("/{thread_id}/history")
async def get_history(
    thread_id: str,
    services: ServicesDep,
    owner: OwnerDep,
    limit: int = Query(default=10, ge=1, le=1000),
    before: str | None = None,
) -> Any:
    """Past states, newest first."""
    return await _history(services, owner, thread_id, HistoryQuery(limit=limit, before=before))
