"""ThreadService: threads and their state, for the routes under `/threads`.

A thread is a row in Trellis' `threads` table (owner, metadata, status, a snapshot of its
latest state) plus its checkpoints in LangGraph's tables; the state routes read and write
the checkpoints through the graph that last ran on the thread.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import cast

from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateSnapshot
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.approvals.service import ApprovalService
from server.core.encoding import dumps, to_jsonable
from server.core.errors import AlreadyExists, BadRequest, Conflict, InvalidRequest, NotFound
from server.core.ids import parse_uuid, require_uuid, uuid7
from server.core.schemas import (
    CheckpointRef,
    HistoryQuery,
    StateUpdate,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
    ThreadTTL,
    TtlStrategy,
)
from server.core.types import (
    Json,
    JsonValue,
    StoredThread,
    Thread,
    ThreadUpdateStateResponse,
)
from server.db import checkpoint_retention, run_rows, thread_rows
from server.db.checkpoint_retention import Pruned
from server.db.checkpoints import FencedPostgresSaver, copy_thread
from server.db.pool import Pool
from server.graph_host.registry import AnyGraph, GraphRegistry, LoadedGraph
from server.graph_host.snapshot import (
    bounded_values,
    empty_state,
    latest_state,
    snapshot_bytes,
)
from server.runs.manager import RunManager

log = logging.getLogger("trellis.threads")

HISTORY_BATCH = 50
"""At most this many checkpoints are read (and held decoded) at once by `/history`."""


@dataclass(frozen=True)
class HistoryPage:
    """A page of `/history`: the states, newest first, each already encoded as JSON."""

    states: list[bytes]
    next_before: str | None
    """The `before` (a checkpoint id) that continues after this page; None when the
    history ended within the page."""

    def body(self) -> bytes:
        """The page as a JSON array."""
        return b"[" + b",".join(self.states) + b"]"


def no_graph_detail(thread_id: str) -> str:
    """The official 400 for a state update on a thread that has no graph yet
    (`langgraph_runtime_inmem` `ops.py` `Threads.State.post`)."""
    return (
        f"Thread '{thread_id}' has no assigned graph ID. This usually occurs when no runs have "
        "been made on this particular thread. This operation requires a graph ID. Please ensure "
        "a run has been made for the thread or manually update the thread metadata (by setting "
        "the 'graph_id' field) before running this operation."
    )


def state_config(
    thread_id: str, ref: CheckpointRef | None = None, checkpoint_id: str | None = None
) -> RunnableConfig:
    """The config that names a thread's checkpoint: the latest, `ref`'s, or `checkpoint_id`."""
    configurable: dict[str, object] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if ref is not None:
        configurable["checkpoint_ns"] = ref.checkpoint_ns
        if ref.checkpoint_id:
            configurable["checkpoint_id"] = ref.checkpoint_id
        if ref.checkpoint_map:
            configurable["checkpoint_map"] = ref.checkpoint_map
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


class ThreadService:
    """Create, read, search, copy and delete threads; read and update their state."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        pool: Pool,
        checkpointer: FencedPostgresSaver,
        registry: GraphRegistry,
        runs: RunManager,
        approvals: ApprovalService | None,
        thread_values_max_bytes: int = 16_384,
        history_budget: int = 8 * 1024 * 1024,
        default_ttl: ThreadTTL | None = None,
    ) -> None:
        self.default_ttl = default_ttl
        """The TTL of threads created without one (`checkpointer.ttl.default_ttl`)."""
        self.thread_values_max_bytes = thread_values_max_bytes
        """The bound of a thread row's copy of its values (larger keys are left out)."""
        self.engine = engine
        self.pool = pool
        self.checkpointer = checkpointer
        self.registry = registry
        self.runs = runs
        self.approvals = approvals
        self.history_budget = history_budget
        """Bytes of JSON a `/history` page stops at."""

    async def create(self, owner: str, body: ThreadCreate) -> Thread:
        """A new thread (with the given id, if any); `if_exists: do_nothing` returns the
        caller's existing thread instead of refusing.

        An id another owner holds answers exactly as one the caller holds with `if_exists:
        raise` does: 409 `already_exists`, same detail, same queries (so same timing), for
        both `if_exists` values. Ids are global primary keys (checkpoints are keyed by thread
        id alone), so a taken id cannot be created for a second owner, and any answer but
        success tells the caller it is taken: hiding that would need per-owner id spaces.
        What stays hidden is whose it is and anything about it (reads answer 404 as for a
        free id). The official server does the same (409 when its auth filters do not
        match). Server-chosen ids are random; clients deriving ids from guessable names
        should not.
        """
        thread_id = uuid7()
        if body.thread_id is not None:
            parsed = parse_uuid(body.thread_id)
            if parsed is None:
                raise InvalidRequest("thread_id must be a UUID")
            thread_id = parsed
        async with self.pool.connection() as conn:  # one statement: autocommit
            created = await thread_rows.create(
                conn,
                owner=owner,
                thread_id=thread_id,
                metadata=body.metadata,
                ttl=body.ttl or self.default_ttl,
            )
            if created is not None:
                return await self._public(created)
            existing = await thread_rows.get(conn, owner=owner, thread_id=thread_id)
        if body.if_exists == "do_nothing" and existing is not None:
            return await self._public(existing)
        raise AlreadyExists(f"thread {thread_id} already exists")

    async def search(self, owner: str, query: ThreadSearch) -> list[Thread]:
        """The caller's threads matching metadata, values, ids or status; with `select`, only
        the keys it names (the SDK calls those `Thread` too)."""
        if not query.values:
            async with self.engine.connect() as conn:
                rows = await thread_rows.search(
                    conn, owner=owner, query=query, limit=query.limit, offset=query.offset
                )
        else:
            rows = await self._search_values(owner, query)
        keep = set(query.select) if query.select else None
        if keep is not None and "values" not in keep:
            return [cast(Thread, {k: v for k, v in row.items() if k in keep}) for row in rows]
        found = [await self._public(row) for row in rows]
        if keep is not None:
            return [cast(Thread, {k: v for k, v in item.items() if k in keep}) for item in found]
        return found

    async def _search_values(self, owner: str, query: ThreadSearch) -> list[StoredThread]:
        """A page of threads whose values contain `query.values`. Rows whose copy of the values
        left out a key the filter names are checked against their full values, so the page
        is read in batches until it is full."""
        out: list[StoredThread] = []
        skip = query.offset
        position = 0
        batch = max(query.limit + query.offset, 100)
        while len(out) < query.limit:
            async with self.engine.connect() as conn:
                rows = await thread_rows.search(
                    conn, owner=owner, query=query, limit=batch, offset=position
                )
            position += len(rows)
            for row in rows:
                if not await self._matches(row, query.values):
                    continue
                if skip:
                    skip -= 1
                    continue
                out.append(row)
                if len(out) == query.limit:
                    break
            if len(rows) < batch:
                break
        return out

    async def _matches(self, row: StoredThread, values: Json) -> bool:
        """Whether the thread's values contain `values` (Postgres' `@>`); a row that can tell
        alone matched in SQL already."""
        if not thread_rows.unsure(row, values):
            return True
        return json_contains(await self._full_values(row), values)

    async def count(self, owner: str, query: ThreadCount) -> int:
        """How many of the caller's threads match."""
        async with self.engine.connect() as conn:
            total = await thread_rows.count(conn, owner=owner, query=query)
            unsure = (
                await thread_rows.unsure_matches(conn, owner=owner, query=query)
                if (query.values)
                else []
            )
        for row in unsure:
            if not json_contains(await self._full_values(row), query.values):
                total -= 1
        return total

    async def get(self, owner: str, thread_id: str, *, include_ttl: bool = False) -> Thread:
        """The caller's thread, else `NotFound`; `include_ttl`: with its `ttl` (None if none)."""
        thread = await self._public(await self._row(owner, thread_id))
        if include_ttl:
            async with self.pool.connection() as conn:
                thread["ttl"] = await thread_rows.ttl_of(
                    conn, owner=owner, thread_id=uuid.UUID(thread["thread_id"])
                )
        return thread

    async def _row(self, owner: str, thread_id: str) -> StoredThread:
        """The caller's thread row (its `values` a bounded copy), else `NotFound`."""
        tid = require_uuid(thread_id, "thread")
        async with self.engine.connect() as conn:
            thread = await thread_rows.get(conn, owner=owner, thread_id=tid)
        if thread is None:
            raise NotFound(f"thread {thread_id[:80]!r} not found")
        return thread

    async def _public(self, row: StoredThread) -> Thread:
        """The API's thread: the row, with its full values when its copy left keys out."""
        thread = cast(Thread, {k: v for k, v in row.items() if k != "values_omitted"})
        if row.get("values_omitted"):
            thread["values"] = await self._full_values(row)
        return thread

    async def _full_values(self, row: StoredThread) -> JsonValue:
        """The values of the thread's latest checkpoint (the row's copy, if its graph is gone)."""
        loaded = self._graph_of(row)
        if loaded is None:
            return row["values"]
        async with loaded.open("threads.read", config=state_config(row["thread_id"])) as graph:
            state = await latest_state(graph, row["thread_id"])
        values: JsonValue = to_jsonable(state.values)
        return values

    async def patch(self, owner: str, thread_id: str, body: ThreadPatch) -> Thread:
        """Merge metadata into a thread; with `ttl`, give it that TTL from now."""
        tid = require_uuid(thread_id, "thread")
        async with self.engine.begin() as conn:
            updated = await thread_rows.patch_metadata(
                conn, owner=owner, thread_id=tid, metadata=body.metadata
            )
            if updated is not None and body.ttl is not None:
                await thread_rows.set_ttl(conn, owner=owner, thread_id=tid, ttl=body.ttl)
        if updated is None:
            raise NotFound(f"thread {thread_id[:80]!r} not found")
        return await self._public(updated)

    async def delete(self, owner: str, thread_id: str) -> None:
        """Delete a thread and everything of it: its runs, checkpoints and approvals in one
        transaction, then its runs' events. Active runs are cancelled first."""
        thread = await self._row(owner, thread_id)
        tid = uuid.UUID(thread["thread_id"])
        async with self.engine.connect() as conn:
            active = await run_rows.active_for_thread(conn, tid)
        for run in active:
            await self.runs.cancel(owner, thread_id, run["run_id"], action="interrupt", wait=True)
        async with self.engine.begin() as conn:
            run_ids = await run_rows.ids_for_thread(conn, tid)
            if not await thread_rows.delete_thread(conn, owner=owner, thread_id=tid):
                return
            await self._end_streams(conn, tid)
        self.runs.thread_runs.created(str(tid))
        await self.runs.events.forget(run_ids)

    @staticmethod
    async def _end_streams(conn: AsyncConnection, thread_id: uuid.UUID) -> None:
        """Tell the thread's streams, here and in other processes, to look again (on commit):
        the thread is gone, so they end."""
        await run_rows.notify(conn, run_rows.THREAD_RUNS_CHANNEL, str(thread_id))

    async def prune(self, owner: str, thread_ids: list[str], strategy: TtlStrategy) -> int:
        """Prune the caller's threads among `thread_ids` (others' and unknown ids are not
        counted): `delete` deletes each as `DELETE /threads/{id}` does; `keep_latest` keeps
        only each thread's latest checkpoint, skipping threads with an active run."""
        ids = []
        for raw in thread_ids:
            parsed = parse_uuid(raw)
            if parsed is None:
                raise InvalidRequest(f"thread_ids: {raw[:80]!r} is not a UUID")
            ids.append(parsed)
        if not ids:
            return 0
        async with self.pool.connection() as conn:
            owned = await thread_rows.owned(conn, owner=owner, thread_ids=ids)
        pruned = 0
        for tid in owned:
            if strategy == "delete":
                try:
                    await self.delete(owner, str(tid))
                except NotFound:
                    continue
                pruned += 1
            elif await self.keep_latest(tid, owner=owner) is not None:
                pruned += 1
        return pruned

    async def keep_latest(
        self, thread_id: uuid.UUID, *, owner: str | None = None, keep: int = 1, forks: bool = False
    ) -> Pruned | None:
        """Keep only the last `keep` checkpoints of an idle thread (see `checkpoint_retention`);
        None when the thread is gone, not the owner's, or has a pending or running run.
        The thread's row lock keeps runs from starting meanwhile."""
        async with self.engine.begin() as conn:
            if not await thread_rows.lock_idle(conn, thread_id, owner=owner):
                return None
            return await self._prune(conn, thread_id, keep, forks=forks)

    async def _prune(
        self, conn: AsyncConnection, thread_id: uuid.UUID, keep: int, *, forks: bool
    ) -> Pruned | None:
        """Keep the last `keep` checkpoints (see `checkpoint_retention`), first seeding each
        `DeltaChannel` with a snapshot where its kept history would begin. None when the
        thread's graph is not served (its delta channels cannot be known)."""
        tid = str(thread_id)
        planned = await checkpoint_retention.plan(conn, tid, keep, forks=forks)
        if not planned.kept:
            return Pruned(0, 0, 0)
        graph_id = await thread_rows.graph_id(conn, thread_id)
        loaded = self.registry.get(graph_id) if graph_id else None
        if loaded is None:
            return None
        async with loaded.open("threads.read", config=state_config(tid)) as graph:
            deltas = [n for n, c in graph.channels.items() if isinstance(c, DeltaChannel)]
            for root in planned.roots if deltas else []:
                seeds = []
                for channel in deltas:
                    version, stored = await checkpoint_retention.channel_version(
                        conn, tid, root, channel
                    )
                    if version is not None and not stored:
                        seeds.append((channel, version))
                if not seeds:
                    continue
                state = await graph.aget_state(state_config(tid, checkpoint_id=root))
                values = state.values if isinstance(state.values, dict) else {}
                for channel, version in seeds:
                    snapshot = self.checkpointer.serde.dumps_typed(
                        _DeltaSnapshot(values.get(channel))
                    )
                    await checkpoint_retention.seed_snapshot(
                        conn, tid, root, channel, version, snapshot
                    )
        return await checkpoint_retention.apply(conn, tid, planned)

    async def expire_delete(self, owner: str, thread_id: str) -> bool:
        """Delete a thread whose TTL passed (`delete`), unless a run or approval is pending
        on it now (then False: a later sweep tries again)."""
        tid = uuid.UUID(thread_id)
        async with self.engine.begin() as conn:
            if not await thread_rows.lock_expired(conn, tid):
                return False
            run_ids = await run_rows.ids_for_thread(conn, tid)
            if not await thread_rows.delete_thread(conn, owner=owner, thread_id=tid):
                return False
            await self._end_streams(conn, tid)
        self.runs.thread_runs.created(thread_id)
        await self.runs.events.forget(run_ids)
        return True

    async def expire_keep_latest(self, thread_id: uuid.UUID) -> Pruned | None:
        """Prune a thread whose TTL passed (`keep_latest`) to its latest checkpoint, unless a
        run or approval is pending on it now (None)."""
        async with self.engine.begin() as conn:
            if not await thread_rows.lock_expired(conn, thread_id):
                return None
            pruned = await self._prune(conn, thread_id, 1, forks=False)
            if pruned is None:
                log.warning(
                    "expired thread kept whole: its graph is not served",
                    extra={"thread_id": str(thread_id)},
                )
            # Also for a thread whose graph is no longer served (it cannot be pruned safely):
            # its TTL is dropped, not retried every sweep, until a run on it sets it again.
            await thread_rows.swept(conn, thread_id, expired=True)
        return pruned

    async def retain(self, thread_id: uuid.UUID, keep: int | None) -> Pruned | None:
        """Trim an idle thread's checkpoints to its last `keep` (None: keep all) and mark its
        retention done; None when a run is pending or running on it now."""
        async with self.engine.begin() as conn:
            if not await thread_rows.lock_idle(conn, thread_id):
                return None
            pruned: Pruned | None = Pruned(0, 0, 0)
            if keep is not None:
                pruned = await self._prune(conn, thread_id, keep, forks=True)
            await thread_rows.swept(conn, thread_id, expired=False)
        return pruned

    async def copy(self, owner: str, thread_id: str) -> Thread | None:
        """A new thread with a copy of this thread's metadata and checkpoints (None if the
        thread went away meanwhile)."""
        source = await self._row(owner, thread_id)
        target = uuid7()
        async with self.engine.begin() as conn:
            created = await thread_rows.copy(
                conn, owner=owner, source=uuid.UUID(source["thread_id"]), target=target
            )
            await copy_thread(conn, source["thread_id"], str(target))
        return await self._public(created) if created is not None else None

    def _graph_of(self, thread: Thread | StoredThread) -> LoadedGraph | None:
        """The graph that last ran on the thread (None before its first run)."""
        graph_id = (thread.get("metadata") or {}).get("graph_id")
        return self.registry.get(graph_id) if isinstance(graph_id, str) else None

    async def state(self, owner: str, thread_id: str, *, subgraphs: bool) -> bytes:
        """The thread's latest state, a `ThreadState` encoded as JSON (encoded once: a long
        thread's state is megabytes)."""
        thread = await self._row(owner, thread_id)
        loaded = self._graph_of(thread)
        if loaded is None:
            return dumps(empty_state())
        config = state_config(thread["thread_id"])
        async with loaded.open("threads.read", config=state_config(thread["thread_id"])) as graph:
            return snapshot_bytes(await graph.aget_state(config, subgraphs=subgraphs))

    async def state_at(
        self, owner: str, thread_id: str, ref: CheckpointRef, *, subgraphs: bool
    ) -> bytes:
        """The thread's state at a checkpoint, encoded as JSON, else `NotFound`."""
        thread = await self._row(owner, thread_id)
        loaded = self._graph_of(thread)
        if loaded is None:
            raise NotFound(f"checkpoint {ref.checkpoint_id!r} not found")
        config = state_config(thread["thread_id"], ref)
        if await self.checkpointer.aget_tuple(config) is None:
            raise NotFound(f"checkpoint {ref.checkpoint_id!r} not found")
        async with loaded.open("threads.read", config=state_config(thread["thread_id"])) as graph:
            return snapshot_bytes(await graph.aget_state(config, subgraphs=subgraphs))

    async def update_state(
        self, owner: str, thread_id: str, body: StateUpdate
    ) -> ThreadUpdateStateResponse:
        """Write values as if `as_node` produced them (`__copy__`: fork a checkpoint), then
        record the thread's new status and tell the approvals whose interrupt went away."""
        thread = await self._row(owner, thread_id)
        if thread["status"] == "busy":
            raise Conflict(f"thread {thread_id} is busy; wait for its run to finish")
        if not (thread.get("metadata") or {}).get("graph_id"):
            raise BadRequest(no_graph_detail(thread["thread_id"]))
        loaded = self._graph_of(thread)
        if loaded is None:
            raise InvalidRequest(f"thread {thread_id} has not run a graph yet; nothing to update")
        config = state_config(thread["thread_id"], body.checkpoint, body.checkpoint_id)
        if "checkpoint_id" in config["configurable"] and (
            await self.checkpointer.aget_tuple(config) is None
        ):
            raise NotFound(f"checkpoint {config['configurable']['checkpoint_id']!r} not found")
        async with loaded.open("threads.update", config=state_config(thread["thread_id"])) as graph:
            try:
                new_config = await graph.aupdate_state(config, body.values, as_node=body.as_node)
            except (InvalidUpdateError, ValueError, KeyError, TypeError) as exc:
                raise InvalidRequest(f"cannot update state: {exc}") from exc
            state = await latest_state(graph, thread["thread_id"])
        values, omitted = bounded_values(state.values, self.thread_values_max_bytes)
        async with self.engine.begin() as conn:
            await thread_rows.set_state(
                conn,
                uuid.UUID(thread["thread_id"]),
                status="interrupted" if state.interrupts or state.has_next else "idle",
                values=values,
                values_omitted=omitted,
                interrupts=state.interrupts,
            )
            if self.approvals is not None:  # a fork can leave pending approvals behind
                await self.approvals.on_state_updated(
                    conn, uuid.UUID(thread["thread_id"]), state.interrupts
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

    async def history(self, owner: str, thread_id: str, query: HistoryQuery) -> HistoryPage:
        """Past states, newest first (none before the thread's first run), at most `limit`
        and at most `history_budget` bytes of JSON (but always one state, if any is left).

        Checkpoints are read in small batches, each continuing `before` the last, and each
        state is encoded as soon as it is read: a request holds one batch of decoded states
        and the page's bytes, however long the thread (LangGraph's `aget_state_history`
        decodes all `limit` checkpoints before yielding the first)."""
        thread = await self._row(owner, thread_id)
        loaded = self._graph_of(thread)
        if loaded is None:
            return HistoryPage([], None)
        async with loaded.open("threads.read", config=state_config(thread["thread_id"])) as graph:
            return await self._history_page(graph, thread["thread_id"], query)

    async def _history_page(
        self, graph: AnyGraph, thread_id: str, query: HistoryQuery
    ) -> HistoryPage:
        before = query.before
        before_config = None
        if isinstance(before, str):
            before_config = state_config(thread_id, checkpoint_id=before)
        elif before is not None:
            before_config = state_config(thread_id, before)
        config = state_config(thread_id, query.checkpoint)
        states: list[bytes] = []
        size = 2  # the brackets
        last_id = ""
        batch = 1
        while len(states) < query.limit:
            want = min(batch, query.limit - len(states))
            fetched = 0
            history = cast(  # an async generator: closed when the page stops early
                AsyncGenerator[StateSnapshot, None],
                graph.aget_state_history(
                    config, filter=query.metadata, before=before_config, limit=want
                ),
            )
            async with aclosing(history):
                async for snapshot in history:
                    fetched += 1
                    encoded = snapshot_bytes(snapshot)
                    if states and size + 1 + len(encoded) > self.history_budget:
                        return HistoryPage(states, last_id)
                    states.append(encoded)
                    size += 1 + len(encoded)
                    last_id = str(snapshot.config["configurable"]["checkpoint_id"])
            if fetched < want:
                return HistoryPage(states, None)
            before_config = state_config(thread_id, checkpoint_id=last_id)
            # As many states as the rest of the budget holds at the mean size so far.
            room = (self.history_budget - size) * len(states) // (size - 2)
            batch = max(1, min(HISTORY_BATCH, room + 1))
        return HistoryPage(states, last_id)


def json_contains(document: object, pattern: object) -> bool:
    """Postgres' `jsonb @>` on decoded JSON: objects contain a pattern's keys (recursively),
    arrays contain each of a pattern's elements somewhere, scalars are equal (and a
    top-level array contains a scalar it holds)."""
    if isinstance(document, list) and not isinstance(pattern, dict | list):
        return any(_scalar_equal(item, pattern) for item in document)
    return _contains(document, pattern)


def _contains(document: object, pattern: object) -> bool:
    if isinstance(pattern, dict):
        return isinstance(document, dict) and all(
            key in document and _contains(document[key], value) for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(document, list) and all(
            any(_contains(item, wanted) for item in document) for wanted in pattern
        )
    return _scalar_equal(document, pattern)


def _scalar_equal(a: object, b: object) -> bool:
    """JSON equality of scalars: 1 equals 1.0, `true` does not equal 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b
