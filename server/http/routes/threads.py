"""Threads and their state: create, read, search, copy, state, update and history."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

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
from server.core.types import Thread, ThreadState, ThreadUpdateStateResponse
from server.http.deps import OwnerDep, ThreadsDep
from server.http.routes import AS_RETURNED

router = APIRouter(prefix="/threads", tags=["threads"])


@router.post("", response_model=AS_RETURNED)
async def create_thread(body: ThreadCreate, threads: ThreadsDep, owner: OwnerDep) -> Thread:
    """Create a thread (optionally with a given id)."""
    return await threads.create(owner, body)


@router.post("/search", response_model=AS_RETURNED)
async def search_threads(
    body: ThreadSearch, threads: ThreadsDep, owner: OwnerDep, response: Response
) -> list[Thread]:
    """Threads matching metadata, values, ids or status."""
    found = await threads.search(owner, body)
    if len(found) == body.limit:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return found


@router.post("/count")
async def count_threads(body: ThreadCount, threads: ThreadsDep, owner: OwnerDep) -> int:
    """How many threads match."""
    return await threads.count(owner, body)


@router.get("/{thread_id}", response_model=AS_RETURNED)
async def get_thread(thread_id: str, threads: ThreadsDep, owner: OwnerDep) -> Thread:
    """One thread with its status and latest values."""
    return await threads.get(owner, thread_id)


@router.patch("/{thread_id}", response_model=AS_RETURNED)
async def patch_thread(
    thread_id: str, body: ThreadPatch, threads: ThreadsDep, owner: OwnerDep
) -> Thread:
    """Merge metadata into a thread."""
    return await threads.patch(owner, thread_id, body)


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, threads: ThreadsDep, owner: OwnerDep) -> Response:
    """Delete a thread, its runs and its checkpoints; active runs are cancelled first."""
    await threads.delete(owner, thread_id)
    return Response(status_code=204)


@router.post("/{thread_id}/copy", response_model=AS_RETURNED)
async def copy(thread_id: str, threads: ThreadsDep, owner: OwnerDep) -> Thread | None:
    """A new thread with a copy of this thread's metadata and checkpoints."""
    return await threads.copy(owner, thread_id)


@router.get("/{thread_id}/state", response_model=AS_RETURNED)
async def get_state(
    thread_id: str, threads: ThreadsDep, owner: OwnerDep, subgraphs: bool = False
) -> ThreadState:
    """The thread's latest state."""
    return await threads.state(owner, thread_id, subgraphs=subgraphs)


@router.get("/{thread_id}/state/{checkpoint_id}", response_model=AS_RETURNED)
async def get_state_at(
    thread_id: str,
    checkpoint_id: str,
    threads: ThreadsDep,
    owner: OwnerDep,
    subgraphs: bool = False,
) -> ThreadState:
    """The thread's state at a checkpoint."""
    ref = CheckpointRef(checkpoint_id=checkpoint_id)
    return await threads.state_at(owner, thread_id, ref, subgraphs=subgraphs)


@router.post("/{thread_id}/state/checkpoint", response_model=AS_RETURNED)
async def post_state_at(
    thread_id: str, body: StateAtCheckpoint, threads: ThreadsDep, owner: OwnerDep
) -> ThreadState:
    """The thread's state at a checkpoint given as an object (namespaces included)."""
    return await threads.state_at(owner, thread_id, body.checkpoint, subgraphs=body.subgraphs)


@router.post("/{thread_id}/state", response_model=AS_RETURNED)
async def update_state(
    thread_id: str, body: StateUpdate, threads: ThreadsDep, owner: OwnerDep
) -> ThreadUpdateStateResponse:
    """Write values as if `as_node` produced them; with `as_node: "__copy__"`, fork a checkpoint."""
    return await threads.update_state(owner, thread_id, body)


@router.post("/{thread_id}/history", response_model=AS_RETURNED)
async def post_history(
    thread_id: str, body: HistoryQuery, threads: ThreadsDep, owner: OwnerDep
) -> list[ThreadState]:
    """Past states, newest first."""
    return await threads.history(owner, thread_id, body)


@router.get("/{thread_id}/history", response_model=AS_RETURNED)
async def get_history(
    thread_id: str,
    threads: ThreadsDep,
    owner: OwnerDep,
    limit: int = Query(default=10, ge=1, le=1000),
    before: str | None = None,
) -> list[ThreadState]:
    """Past states, newest first."""
    return await threads.history(owner, thread_id, HistoryQuery(limit=limit, before=before))
