"""Threads and their state: create, read, search, copy, state, update and history."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from server.core.schemas import (
    CheckpointRef,
    HistoryQuery,
    StateAtCheckpoint,
    StateUpdate,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
)
from server.core.types import Json, Thread, ThreadUpdateStateResponse
from server.http.deps import OwnerDep, ThreadsDep
from server.http.routes import AS_RETURNED, CheckedRoute
from server.resources.thread_service import HistoryPage

router = APIRouter(prefix="/threads", tags=["threads"], route_class=CheckedRoute)


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


class ThreadPruneResponse(BaseModel):
    pruned_count: int
    """How many of the caller's threads were pruned."""


@router.post("/prune", response_model=ThreadPruneResponse)
async def prune_threads(body: ThreadPrune, threads: ThreadsDep, owner: OwnerDep) -> Json:
    """Prune threads by id: `delete` removes each thread and all its data; `keep_latest`
    keeps each thread with only its latest checkpoint (threads with an active run are
    skipped). Threads that are not the caller's are neither touched nor counted."""
    return {"pruned_count": await threads.prune(owner, body.thread_ids, body.strategy)}


@router.post("/count")
async def count_threads(body: ThreadCount, threads: ThreadsDep, owner: OwnerDep) -> int:
    """How many threads match."""
    return await threads.count(owner, body)


@router.get("/{thread_id}", response_model=AS_RETURNED)
async def get_thread(
    thread_id: str, threads: ThreadsDep, owner: OwnerDep, include: str | None = None
) -> Thread:
    """One thread with its status and latest values; `include=ttl` adds its `ttl`
    (`strategy`, `ttl_minutes`, `expires_at`; null when it has none)."""
    fields = {part.strip() for part in (include or "").split(",")}
    return await threads.get(owner, thread_id, include_ttl="ttl" in fields)


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


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/json", headers=headers)


@router.get("/{thread_id}/state")
async def get_state(
    thread_id: str, threads: ThreadsDep, owner: OwnerDep, subgraphs: bool = False
) -> Response:
    """The thread's latest state."""
    return _json(await threads.state(owner, thread_id, subgraphs=subgraphs))


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: str,
    checkpoint_id: str,
    threads: ThreadsDep,
    owner: OwnerDep,
    subgraphs: bool = False,
) -> Response:
    """The thread's state at a checkpoint."""
    ref = CheckpointRef(checkpoint_id=checkpoint_id)
    return _json(await threads.state_at(owner, thread_id, ref, subgraphs=subgraphs))


@router.post("/{thread_id}/state/checkpoint")
async def post_state_at(
    thread_id: str, body: StateAtCheckpoint, threads: ThreadsDep, owner: OwnerDep
) -> Response:
    """The thread's state at a checkpoint given as an object (namespaces included)."""
    state = await threads.state_at(owner, thread_id, body.checkpoint, subgraphs=body.subgraphs)
    return _json(state)


@router.post("/{thread_id}/state", response_model=AS_RETURNED)
async def update_state(
    thread_id: str, body: StateUpdate, threads: ThreadsDep, owner: OwnerDep
) -> ThreadUpdateStateResponse:
    """Write values as if `as_node` produced them; with `as_node: "__copy__"`, fork a checkpoint."""
    return await threads.update_state(owner, thread_id, body)


_HISTORY = """Past states, newest first: at most `limit` states, and a page stops once its
JSON would pass the server's byte budget (`HISTORY_MAX_BYTES`, 8 MB by default; a page always
holds at least one state). When a page stops before the history ends, at the budget or at
`limit`, the `X-Next-Before` header holds the id of its last checkpoint: ask again with
`before` set to it (as a string, or as `{"checkpoint_id": ...}` like the SDK and Studio send
it) for the states after it, each exactly once. Without the header the history ended."""

_PAGE: dict[int | str, dict[str, object]] = {
    200: {
        "description": "A JSON array of `ThreadState`s, newest first.",
        "headers": {
            "X-Next-Before": {
                "description": "`before` for the next page; absent on the last page.",
                "schema": {"type": "string"},
            }
        },
    }
}


def _history(page: HistoryPage) -> Response:
    headers = {"X-Next-Before": page.next_before} if page.next_before else None
    return _json(page.body(), headers)


@router.post("/{thread_id}/history", description=_HISTORY, responses=_PAGE)
async def post_history(
    thread_id: str, body: HistoryQuery, threads: ThreadsDep, owner: OwnerDep
) -> Response:
    """Past states, newest first, a page within a byte budget."""
    return _history(await threads.history(owner, thread_id, body))


@router.get("/{thread_id}/history", description=_HISTORY, responses=_PAGE)
async def get_history(
    thread_id: str,
    threads: ThreadsDep,
    owner: OwnerDep,
    limit: int = Query(default=10, ge=1, le=1000),
    before: str | None = None,
) -> Response:
    """Past states, newest first, a page within a byte budget."""
    query = HistoryQuery(limit=limit, before=before)
    return _history(await threads.history(owner, thread_id, query))
