"""RunManager: the one entry point routes use to create, follow, wait for and cancel runs.

Creating a run validates it against the thread and the multitask strategy in one
transaction (the thread row is locked), inserts it as a pending row and wakes the
executors. Routes never execute graphs themselves, so executors can live in this
process or in separate worker processes without any route changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Literal, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.auth.identity import auth_user_for_run
from server.core import metrics
from server.core.encoding import to_jsonable
from server.core.errors import BadRequest, InvalidRequest, NotFound, NothingToResume, ThreadBusy
from server.core.ids import parse_uuid, require_uuid, uuid7
from server.core.logging import current_request
from server.core.schemas import RunCreate, ThreadTTL
from server.core.types import (
    CancelAction,
    Json,
    JsonValue,
    Run,
    RunAssistant,
    RunKwargs,
    RunRow,
    RunStatus,
)
from server.db import assistant_rows, run_rows, thread_rows
from server.db.engine import Conn
from server.db.pool import Pool
from server.graph_host.registry import GraphRegistry, system_assistant_id
from server.graph_host.snapshot import latest_state
from server.runs.events import EventBus, RunEvent, parse_event_id
from server.runs.executor import Executor
from server.runs.hooks import Notice, RunHooks
from server.runs.lease import sweep_expired
from server.runs.run_limits import RunLimits
from server.runs.signals import (
    CANCEL_CHANNEL,
    RUNS_CHANNEL,
    Completions,
    ThreadRuns,
    first_set,
)

log = logging.getLogger("trellis.runs")

TERMINAL = ("success", "error", "timeout", "interrupted")

CONTEXT_AND_CONFIGURABLE = (
    "Cannot specify both configurable and context. Prefer setting context alone. Context was "
    "introduced in LangGraph 0.6.0 and is the long term planned replacement for configurable."
)
"""The official server's 400 for a run with both (`models/run.py` `create_valid_run`)."""

V2_MARKER = "__event_streaming_v2"
"""The `configurable` key marking a run the thread protocol started (langgraph-api's
`EVENT_STREAMING_V2_CONFIG_KEY`)."""

WaitStatus = RunStatus | Literal["deleted"]
"""How a run a caller waited for ended: its status, or `deleted` (it is gone)."""


class RunManager:
    """Creates runs as queue rows and follows them to completion."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        pool: Pool,
        registry: GraphRegistry,
        checkpointer: BaseCheckpointSaver[str],
        events: EventBus,
        completions: Completions,
        executor: Executor | None,
        hooks: RunHooks | None = None,
        lease_seconds: float = 4.0,
        limits: RunLimits | None = None,
        thread_runs: ThreadRuns | None = None,
        thread_ttl: ThreadTTL | None = None,
    ) -> None:
        self.engine = engine
        self.thread_runs = thread_runs or ThreadRuns()
        """Signals of new runs on threads (for thread streams): those created here directly,
        the others by NOTIFY (`Listener`)."""
        self.thread_ttl = thread_ttl
        """The TTL of the threads a run creates (`checkpointer.ttl.default_ttl`)."""
        self.limits = limits or RunLimits()
        """What a run's config and context may ask (422 beyond it)."""
        self.pool = pool
        """For lone statements: one autocommit round trip, no transaction around it."""
        self.lease_seconds = lease_seconds
        self.registry = registry
        self.checkpointer = checkpointer
        self.events = events
        self.completions = completions
        self.executor = executor
        self.hooks = hooks

    @contextlib.asynccontextmanager
    async def _transaction(self, *, orm: bool) -> AsyncIterator[Conn]:
        """A transaction on a SQLAlchemy connection (`orm`) or on a pooled psycopg one."""
        if orm:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self.pool.connection() as raw, raw.transaction():
                yield raw

    def _assistant_uuid(self, assistant_id: str) -> uuid.UUID | None:
        """An assistant id, or a graph id naming its system assistant, as a UUID."""
        parsed = parse_uuid(assistant_id)
        if parsed is None and assistant_id in self.registry:
            parsed = system_assistant_id(assistant_id)
        return parsed

    async def resolve_assistant(self, conn: Conn, owner: str, assistant_id: str) -> RunAssistant:
        """An assistant by id, or a graph id naming its system assistant."""
        parsed = self._assistant_uuid(assistant_id)
        assistant = (
            await assistant_rows.get(conn, owner=owner, assistant_id=parsed) if parsed else None
        )
        if assistant is None:
            raise NotFound(f"assistant {assistant_id[:80]!r} not found")
        loaded = self.registry.get(assistant["graph_id"])
        if loaded is None:
            raise NotFound(f"graph {assistant['graph_id']!r} is not served by this server")
        if loaded.error is not None:
            raise loaded.unavailable()  # it failed to load: say why instead of queueing a run
        return cast(RunAssistant, assistant)

    async def create(
        self,
        owner: str,
        thread_id: str | None,
        body: RunCreate,
        *,
        approval_id: uuid.UUID | None = None,
        waited: bool = False,
    ) -> Run:
        """Validate and enqueue a run; returns the run object.

        A run on an existing thread is created in one server-side call; one that must stop
        earlier runs, create its thread, start from a checkpoint or close approvals takes
        the full path below. `approval_id`: the run carries that approval's decision (see
        `server.approvals.service`). `waited`: the request waits for the output, so the run's
        events matter only to whoever joins meanwhile.
        """
        configurable = (body.config or {}).get("configurable")
        if configurable and body.context:
            raise BadRequest(CONTEXT_AND_CONFIGURABLE)
        v2_only = sorted({"tools", "lifecycle"}.intersection(body.stream_modes))
        if v2_only and not (isinstance(configurable, dict) and configurable.get(V2_MARKER)):
            # As the official `create_valid_run`: these come from the protocol's runs only.
            raise InvalidRequest(
                f"stream_mode entries {v2_only!r} are only supported on the v2 event "
                "streaming endpoints."
            )
        self.limits.check(body.config, body.context)
        to_cancel: list[str] = []
        notices: list[Notice] = []
        resume = body.command is not None and body.command.resume is not None
        # Closing approvals needs SQLAlchemy (only a resume can close any); otherwise the
        # transaction runs on a psycopg connection: no greenlet hops, prepared statements.
        closes_approvals = self.hooks is not None and resume
        checkpoint_id = body.checkpoint_id or (
            body.checkpoint.checkpoint_id if body.checkpoint else None
        )
        if thread_id is not None and not closes_approvals and checkpoint_id is None:
            created = await self._create_in_one_call(
                owner, thread_id, body, resume=resume, waited=waited
            )
            if created is not None:
                return created
        async with self._transaction(orm=closes_approvals) as conn:
            assistant = await self.resolve_assistant(conn, owner, body.assistant_id)
            meta: Json = {
                "graph_id": assistant["graph_id"],
                "assistant_id": assistant["assistant_id"],
            }
            temporary = thread_id is None
            thread_status: str | None
            if thread_id is None:
                tid = uuid7()
                await thread_rows.create(
                    conn, owner=owner, thread_id=tid, metadata=meta, ttl=self.thread_ttl
                )
                thread_status = "idle"
            else:
                tid = require_uuid(thread_id, "thread")
                found = await thread_rows.get(conn, owner=owner, thread_id=tid, for_update=True)
                if found is None:
                    if body.if_not_exists != "create":
                        raise NotFound(f"thread {thread_id!r} not found")
                    if await thread_rows.exists_for_other_owner(conn, tid):
                        raise NotFound(f"thread {thread_id!r} not found")
                    await thread_rows.create(
                        conn, owner=owner, thread_id=tid, metadata=meta, ttl=self.thread_ttl
                    )
                thread_status = "idle" if found is None else found["status"]
            active = await run_rows.active_for_thread(conn, tid)
            strategy = body.multitask_strategy
            if active and strategy == "reject":
                raise ThreadBusy(f"thread {tid} has an active run; multitask_strategy is 'reject'")
            if active and strategy in ("interrupt", "rollback"):
                # `interrupt` lets an earlier run stop at its next step boundary.
                action: CancelAction = "drain" if strategy == "interrupt" else "rollback"
                for other in active:
                    other_uuid = uuid.UUID(other["run_id"])
                    metrics.run_cancelled(
                        "interrupt" if strategy == "interrupt" else "rollback", other["status"]
                    )
                    # A pending run claimed since it was read is stopped as a running one.
                    if other["status"] == "pending" and await run_rows.cancel_pending(
                        conn, other_uuid
                    ):
                        if strategy == "rollback":
                            await run_rows.delete_run(conn, owner=owner, run_id=other_uuid)
                    else:
                        await run_rows.request_cancel(conn, other_uuid, action)
                        to_cancel.append(other["run_id"])
                active = []
            if checkpoint_id is not None:
                # Running from an earlier checkpoint (time travel): it must exist, and a
                # resume there answers that checkpoint's interrupt, whatever the thread is now.
                ns = body.checkpoint.checkpoint_ns if body.checkpoint else ""
                config: RunnableConfig = {
                    "configurable": {
                        "thread_id": str(tid),
                        "checkpoint_ns": ns,
                        "checkpoint_id": checkpoint_id,
                    }
                }
                if await self.checkpointer.aget_tuple(config) is None:
                    raise NotFound(f"checkpoint {checkpoint_id!r} not found on thread {tid}")
            elif resume and not active and thread_status != "interrupted":
                raise NothingToResume(f"thread {tid} has no pending interrupt to resume")
            run_id = uuid7()
            kwargs: RunKwargs = {
                **self._run_kwargs(owner, body, waited),
                "graph_id": assistant["graph_id"],
            }
            # Fast path: nothing ahead of it on the thread and a free slot here, so this
            # process claims the run in the same transaction instead of a queue round trip.
            # Runs only asked to stop (`to_cancel`) are still running until they end: the
            # new run waits in the queue behind them (one running run per thread).
            local = (
                self.executor is not None
                and self.executor.has_capacity(owner)
                and not active
                and not to_cancel
                and body.after_seconds == 0
            )
            row = await run_rows.insert(
                conn,
                run_id=run_id,
                thread_id=tid,
                assistant_id=uuid.UUID(assistant["assistant_id"]),
                owner=owner,
                metadata=body.metadata or {},
                kwargs=kwargs,
                multitask_strategy=strategy,
                temporary=temporary,
                after_seconds=body.after_seconds,
                thread_metadata=meta,
                wake=None if local else RUNS_CHANNEL,
                claim_for=self.executor.worker_id if local and self.executor else None,
                lease_seconds=self.executor.lease_seconds if self.executor else 0,
            )
            if self.hooks is not None and isinstance(conn, AsyncConnection):
                # Closes the approvals this run answers, or refuses it.
                notices = await self.hooks.on_run_created(
                    conn,
                    owner=owner,
                    thread_id=tid,
                    run_id=run_id,
                    body=body,
                    approval_id=approval_id,
                )
        if self.hooks is not None:
            self.hooks.notify(notices)
        for other_id in to_cancel:  # only with the `interrupt` or `rollback` strategy
            await self._signal_cancel(other_id, "drain" if strategy == "interrupt" else "rollback")
        return self._created(row, assistant)

    async def _create_in_one_call(
        self,
        owner: str,
        thread_id: str,
        body: RunCreate,
        *,
        resume: bool,
        waited: bool,
    ) -> Run | None:
        """The common creation, a run on an existing thread, as one server-side call.
        None when the run needs the full path (earlier runs to stop, a thread to create)."""
        assistant_id = self._assistant_uuid(body.assistant_id)
        if assistant_id is None:
            raise NotFound(f"assistant {body.assistant_id[:80]!r} not found")
        tid = require_uuid(thread_id, "thread")
        executor = self.executor
        try:
            async with self.pool.connection() as conn:
                row = await run_rows.create(
                    conn,
                    owner=owner,
                    assistant_id=assistant_id,
                    graphs=self.registry.available_ids,
                    thread_id=tid,
                    run_id=uuid7(),
                    metadata=body.metadata or {},
                    kwargs=self._run_kwargs(owner, body, waited),
                    multitask_strategy=body.multitask_strategy,
                    after_seconds=body.after_seconds,
                    resume=resume,
                    claim_for=executor.worker_id
                    if executor and executor.has_capacity(owner)
                    else None,
                    lease_seconds=executor.lease_seconds if executor else 0,
                    wake=RUNS_CHANNEL,
                )
        except run_rows.Refused as refused:
            if refused.reason == "no_assistant":
                raise NotFound(f"assistant {body.assistant_id[:80]!r} not found") from None
            if refused.reason == "graph_not_served":
                broken = self.registry.get(str(refused))
                if broken is not None:
                    raise broken.unavailable() from None  # it failed to load: say why
                raise NotFound(f"graph {str(refused)!r} is not served by this server") from None
            if refused.reason == "no_thread" and body.if_not_exists != "create":
                raise NotFound(f"thread {thread_id!r} not found") from None
            if refused.reason == "busy":
                raise ThreadBusy(
                    f"thread {tid} has an active run; multitask_strategy is 'reject'"
                ) from None
            if refused.reason == "nothing_to_resume":
                raise NothingToResume(f"thread {tid} has no pending interrupt to resume") from None
            return None
        return self._created(row, row.pop("assistant"))

    @staticmethod
    def _run_kwargs(owner: str, body: RunCreate, waited: bool) -> RunKwargs:
        """What a run keeps of its request, for whichever worker executes it (`waited`: the
        request waits for its output)."""
        kwargs = body.model_dump(mode="json", exclude_none=True)
        kwargs["waited"] = waited
        kwargs["stream_mode"] = body.stream_modes
        kwargs["auth_user"] = auth_user_for_run(owner)  # lets any worker rebuild the identity
        if (request := current_request()) is not None:
            kwargs["request_id"] = request.request_id
            if request.traceparent is not None:
                kwargs["traceparent"] = request.traceparent
        return cast(RunKwargs, kwargs)

    def _created(self, row: RunRow, assistant: RunAssistant | None) -> Run:
        """Hand a new run to this process's executor (it claimed it: running) or wake it."""
        if self.executor is not None:
            if row["status"] == "running":
                self.executor.launch(row, assistant)
            else:
                self.executor.wake()
        run = run_rows.public(row)
        self.thread_runs.created(str(row["thread_id"]))  # streams here; elsewhere by NOTIFY
        metrics.run_created(row["kwargs"]["graph_id"])
        log.info(
            "run created",
            extra={
                "run_id": run["run_id"],
                "thread_id": run["thread_id"],
                "assistant_id": run["assistant_id"],
                "graph_id": row["kwargs"]["graph_id"],
            },
        )
        return run

    async def get(self, owner: str, thread_id: str, run_id: str) -> Run:
        """A run of a thread."""
        tid, rid = require_uuid(thread_id, "thread"), require_uuid(run_id, "run")
        async with self.pool.connection() as conn:
            run = await run_rows.get(conn, owner=owner, run_id=rid, thread_id=tid)
        if run is None:
            raise NotFound(f"run {run_id!r} not found")
        return run

    async def list(
        self, owner: str, thread_id: str, *, limit: int, offset: int, status: str | None
    ) -> list[Run]:
        """A thread's runs, newest first."""
        tid = require_uuid(thread_id, "thread")
        async with self.engine.connect() as conn:
            if await thread_rows.get(conn, owner=owner, thread_id=tid) is None:
                raise NotFound(f"thread {thread_id!r} not found")
            return await run_rows.list_for_thread(
                conn, owner=owner, thread_id=tid, limit=limit, offset=offset, status=status
            )

    async def delete(self, owner: str, thread_id: str, run_id: str) -> None:
        """Delete a finished run; an active run must be cancelled first."""
        run = await self.get(owner, thread_id, run_id)
        if run["status"] in ("pending", "running"):
            raise InvalidRequest(f"run {run_id} is {run['status']}; cancel it before deleting")
        async with self.engine.begin() as conn:
            await run_rows.delete_run(conn, owner=owner, run_id=uuid.UUID(run["run_id"]))

    async def wait(self, run_id: str) -> tuple[WaitStatus, JsonValue]:
        """Block until the run ends; returns its status and output."""
        event = self.completions.event(run_id)
        try:
            while True:
                missed = self.completions.missed()  # before asking: nothing falls between
                async with self.pool.connection() as conn:
                    found = await run_rows.result(conn, uuid.UUID(run_id))
                if found is None:
                    if (kept := self.completions.outcome(run_id)) is not None:
                        return cast(WaitStatus, kept[0]), cast(JsonValue, kept[1])
                    return "deleted", None
                if found.status in TERMINAL:
                    return found.status, await self.output(found, run_id)
                # The NOTIFY or local signal wakes us, or the listener's reconnection (the
                # NOTIFY may have been sent while it was away: a database restart); the
                # timeout only guards against a signal lost with a dead process.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(first_set(event, missed), 30.0)
                event = self.completions.event(run_id)
        finally:
            self.completions.forget(run_id)

    async def output(self, result: run_rows.Result, run_id: str | None = None) -> JsonValue:
        """A finished run's output: the values of its final checkpoint, with its pending
        interrupts (`__interrupt__`) or its error (`__error__`, alone). A run recorded
        without a checkpoint reference stored its whole output (before migration 0006)."""
        own = result.output
        if result.checkpoint_id is None or (isinstance(own, dict) and "__error__" in own):
            return own
        if (
            not (isinstance(own, dict) and "__interrupt__" in own)
            and run_id is not None
            and (held := self.completions.final_state(run_id, result.checkpoint_id)) is not None
        ):
            handed: JsonValue = to_jsonable(held)  # executed here: no need to read it back
            return handed
        loaded = self.registry.get(result.graph_id) if result.graph_id else None
        if loaded is None:
            return own if own is not None else {}
        async with loaded.open("threads.read") as graph:
            state = await latest_state(
                graph, str(result.thread_id), checkpoint_id=result.checkpoint_id
            )
        values: JsonValue = to_jsonable(state.values)
        if not isinstance(values, dict):
            return values
        if isinstance(own, dict) and "__interrupt__" in own:
            pending = own["__interrupt__"]
            if pending is None:  # too large to keep with the run: read with the values
                pending = to_jsonable([i for items in state.interrupts.values() for i in items])
            values["__interrupt__"] = pending
        return values

    async def stream(
        self, run_id: str, after: str | None = None, *, just_created: bool = False
    ) -> AsyncIterator[RunEvent]:
        """A run's events after `after`, following live until the run ends.

        `just_created`: the caller created the run a moment ago, so it cannot have ended
        with its events already gone (no need to ask).
        """
        if after is None and not just_created and await self._ended_without_events(run_id):
            return

        # Idle streams ask the database nothing: the run's end arrives as a signal (NOTIFY or
        # in-process). The database is asked once, and again only if signals may have been
        # missed (the listener reconnected).
        ended = self.completions.watch(run_id)
        checked: int | None = None

        async def finished() -> bool:
            nonlocal checked
            if ended.is_set():
                return True
            epoch = self.completions.epoch
            if checked == epoch:
                return False
            try:
                async with self.pool.connection() as conn:
                    found = await run_rows.status(conn, uuid.UUID(run_id))
            except psycopg.Error:
                return False  # unknown while the database is away: keep following the events
            checked = epoch
            return found is None or found in TERMINAL

        try:
            async for event in self.events.subscribe(run_id, after, finished):
                yield event
        finally:
            self.completions.unwatch(run_id)

    async def resume_point(self, run_id: str, after: str | None) -> str | None:
        """Where a join of the run with `Last-Event-ID: after` starts. An id the run's stream
        may hold: after it (a trimmed one gets the bus's resync error). A malformed one, or
        one past the newest event: after the newest event, replaying nothing, as the official
        server's join does (`langgraph_runtime_inmem` `Runs.Stream.join`, whose
        `restore_messages` yields only stored ids greater than the one given)."""
        if after is None or after == "":
            return None
        try:
            cursor = parse_event_id(after)
        except InvalidRequest:
            cursor = None
        newest = await self.events.newest(run_id)
        if newest is None:
            return None  # nothing retained yet (or any more): from the start, which is now
        if cursor is not None and cursor <= (parse_event_id(newest) or (0, 0)):
            return after
        return newest

    async def _ended_without_events(self, run_id: str) -> bool:
        """A finished run whose events are no longer retained has nothing to replay."""
        if await self.events.has_events(run_id):
            return False
        async with self.pool.connection() as conn:
            found = await run_rows.status(conn, uuid.UUID(run_id))
        return found is None or found in TERMINAL

    async def cancel(
        self, owner: str, thread_id: str, run_id: str, *, action: CancelAction, wait: bool
    ) -> Run:
        """Cancel a run; with `wait`, return only once it has really stopped."""
        run = await self.get(owner, thread_id, run_id)
        if run["status"] in TERMINAL:
            return run
        rid, tid = uuid.UUID(run["run_id"]), uuid.UUID(run["thread_id"])
        async with self.engine.begin() as conn:
            # A run that has not started just stops; a running one is asked to stop, in the
            # database too, so a worker in another process (or the sweep, if it died) acts.
            await thread_rows.lock(conn, tid)
            stopped = await run_rows.cancel_pending(conn, rid)
            if stopped and action == "rollback":
                await run_rows.delete_run(conn, owner=owner, run_id=rid)
            if stopped:
                await thread_rows.set_state(conn, tid, status="idle", busy_if_queued=True)
            else:
                await run_rows.request_cancel(conn, rid, action)
        metrics.run_cancelled(action, "pending" if stopped else "running")
        if stopped:
            self.completions.done(run["run_id"])
            resumable = bool((run.get("kwargs") or {}).get("stream_resumable"))
            await self.events.end(run["run_id"], "interrupted", resumable=resumable)
        else:
            await self._signal_cancel(run["run_id"], action)
            if wait:
                await self._wait_cancelled(rid)
        if action == "rollback":
            return {**run, "status": "interrupted"}
        return await self.get(owner, thread_id, run_id) if wait or stopped else run

    async def _wait_cancelled(self, run_id: uuid.UUID) -> None:
        """Wait until a cancelled run stops; if its worker is dead, end it here once its lease
        lapses instead of waiting for a worker's sweep (there may be no worker left)."""
        key = str(run_id)
        while True:
            event = self.completions.event(key)
            async with self.pool.connection() as conn:
                found = await run_rows.status(conn, run_id)
            if found is None or found in TERMINAL:
                self.completions.forget(key)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), self.lease_seconds / 2)
            await sweep_expired(self.engine, self.events, self.completions, run_id)

    async def _signal_cancel(self, run_id: str, action: CancelAction) -> None:
        if self.executor is not None and self.executor.cancel(run_id, action):
            return
        async with self.engine.begin() as conn:
            await run_rows.notify(conn, CANCEL_CHANNEL, f"{run_id}:{action}")
