"""Executor: claims queued runs from Postgres and executes them under a lease.

The executor is the worker half of Trellis. It wakes when a run is created in
this process, on a Postgres `NOTIFY` from another process, or when the earliest
delayed run becomes due; it never sleeps in a poll loop waiting for work. Each
claimed run holds a lease (owner + epoch + expiry) renewed by a heartbeat thread
(`server.runs.lease`); ending a run is fenced on that lease, so a worker that lost
it cannot overwrite the run's outcome. Runs whose lease lapsed (their worker died)
go back to the queue and resume from their last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl
from langgraph.types import Durability
from sqlalchemy.ext.asyncio import AsyncEngine

from server.core import metrics, tracing
from server.core.encoding import dumps, to_jsonable
from server.core.logging import bind_run, install_context
from server.core.types import (
    CancelAction,
    Interrupts,
    JsonObject,
    JsonValue,
    RunAssistant,
    RunRow,
    ThreadStatus,
)
from server.db import checkpoints, run_rows, thread_rows
from server.db.checkpoint_deltas import remember_lists
from server.db.checkpoints import CURRENT_FENCE, Fence, LeaseLost
from server.db.outages import infrastructure_fault
from server.db.pool import Pool
from server.graph_host.registry import GraphRegistry, LoadedGraph
from server.graph_host.snapshot import LatestState, bounded_values, latest_state
from server.runs.events import EventBus
from server.runs.hooks import Notice, RunHooks
from server.runs.lease import Heartbeat, sweep_expired
from server.runs.run_config import (
    RunUser,
    build_config,
    drop_unfitted,
    fit_context,
    graph_input,
    run_context,
)
from server.runs.run_limits import RunLimits
from server.runs.run_telemetry import with_telemetry
from server.runs.signals import DONE_CHANNEL, RUNS_CHANNEL, Completions
from server.runs.stream import FinalCheckpoint, stream_run
from server.runs.webhooks import WebhookSender, run_payload

if TYPE_CHECKING:
    from opentelemetry.trace import Span

log = logging.getLogger("trellis.runs")

CLAIM_BATCH = 4
"""Runs one claim query may take."""

Ending = Literal["success", "error", "timeout", "interrupted", "rollback"]
"""How an execution ended: a run status, or `rollback` (interrupted, and then removed)."""

FAILED: tuple[Ending, ...] = ("error", "timeout")
"""Endings whose output is the error (the thread's status becomes `error`)."""

FINISH_RETRY_SECONDS = 60.0
"""How long recording a run's outcome is retried through infrastructure faults; after that
the run's lease lapses and another worker resumes it (from its last checkpoint)."""

MAX_FAULT_BACKOFF = 10.0
"""The longest wait before a run interrupted by an infrastructure fault is claimed again."""

T = TypeVar("T")


class Executor:
    """Claims runs and executes them, at most `concurrency` at a time."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        pool: Pool,
        registry: GraphRegistry,
        checkpointer: BaseCheckpointSaver[str],
        events: EventBus,
        completions: Completions,
        conninfo: str,
        concurrency: int,
        default_durability: Durability,
        lease_seconds: float = 4.0,
        sweep_seconds: float = 1.0,
        fault_attempts: int = 6,
        fault_backoff_seconds: float = 0.5,
        hooks: RunHooks | None = None,
        webhooks: WebhookSender | None = None,
        thread_values_max_bytes: int = 16_384,
        limits: RunLimits | None = None,
        owner_share: int | None = None,
        measure: bool = True,
    ) -> None:
        self.engine = engine
        self.measure = measure
        """Whether runs are measured beyond counting them: node steps, model calls, time
        to the first event (`METRICS_ENABLED`)."""
        install_context()
        self.limits = limits or RunLimits()
        """Ceilings on what a run's config and context ask, and its timeout."""
        self.owner_share = owner_share or concurrency
        """Running runs one owner may have at once (its further runs wait for others')."""
        self.thread_values_max_bytes = thread_values_max_bytes
        """The bound of a thread row's copy of its values (larger keys are left out)."""
        self.pool = pool
        self.hooks = hooks
        self.webhooks = webhooks
        self.registry = registry
        self.checkpointer = checkpointer
        self.events = events
        self.completions = completions
        self.concurrency = concurrency
        self.default_durability = default_durability
        self.lease_seconds = lease_seconds
        self.sweep_seconds = sweep_seconds
        self.fault_attempts = fault_attempts
        """Attempts a run gets through infrastructure faults before it ends `error`."""
        self.fault_backoff_seconds = fault_backoff_seconds
        self.worker_id = f"worker-{uuid.uuid4().hex[:12]}"
        self._heartbeat = Heartbeat(conninfo, self)
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._controls: dict[str, RunControl] = {}
        self._epochs: dict[str, int] = {}
        self._owners: dict[str, str] = {}
        self._cancel_actions: dict[str, CancelAction] = {}
        self._ending: set[str] = set()
        """Runs writing their outcome: too late to stop them (that write is fenced anyway).
        A heartbeat that renewed leases just after such a write reports the run as lost."""
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._maybe_queued = True
        """Whether the queue may hold runs this executor could claim (false after an empty
        claim, until a wake-up): a finished run frees a slot without a pointless query."""

    # lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start claiming runs and renewing leases."""
        self._heartbeat.start(asyncio.get_running_loop())
        self._loop_task = asyncio.create_task(self._claim_loop(), name="trellis-claim")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming; let running steps finish within the grace period, then hand runs back.

        Each run is asked to drain at its next step boundary; a run that drained,
        or that is still running when the grace period ends, goes back to the
        queue with its lease released, so another worker resumes it at once
        from its last checkpoint.
        """
        self._stopping = True
        self._wake.set()
        for control in self._controls.values():
            control.request_drain("shutdown")
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=grace_seconds)
        for run_id, task in list(self._tasks.items()):
            self._cancel_actions[run_id] = "requeue"
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=5)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self._heartbeat.stop()

    def wake(self) -> None:
        """A run may be claimable now (a NOTIFY, or a run created here without a free slot)."""
        self._maybe_queued = True
        self._wake.set()

    def has_capacity(self, owner: str | None = None) -> bool:
        """Whether this executor can start another run now (of `owner`, within its share of
        the runs executing here: the claim query counts those of every worker)."""
        if self._stopping or len(self._tasks) >= self.concurrency:
            return False
        return owner is None or self._running_for(owner) < self.owner_share

    def _running_for(self, owner: str) -> int:
        return sum(1 for other in self._owners.values() if other == owner)

    def held(self) -> list[uuid.UUID]:
        """Runs this executor holds leases for (safe to call from the heartbeat thread)."""
        return [uuid.UUID(run_id) for run_id in list(self._epochs)]

    def cancel(self, run_id: str, action: CancelAction) -> bool:
        """Stop a run executing here; False if it is not.

        `drain` stops it at the next step boundary (the `interrupt` multitask
        strategy); `interrupt` and `rollback` stop it now; `lost` abandons it
        without writing anything (another worker owns it).
        """
        task = self._tasks.get(run_id)
        if task is None or run_id in self._ending:
            return False
        if action == "drain":
            self._cancel_actions.setdefault(run_id, "interrupt")
            self._controls[run_id].request_drain("interrupt")
            return True
        self._cancel_actions[run_id] = action
        task.cancel()
        return True

    # claiming -------------------------------------------------------------

    async def _claim_loop(self) -> None:
        next_sweep = 0.0
        due: datetime | None = None
        while not self._stopping:
            self._wake.clear()
            try:
                if time.monotonic() >= next_sweep:
                    await self._sweep()
                    # Delayed runs (`after_seconds`) are looked up with the sweep, not on
                    # every wake-up: the hot path is one claim query per wake-up.
                    async with self.engine.connect() as conn:
                        due = await run_rows.next_due(conn)
                    next_sweep = time.monotonic() + self.sweep_seconds
                    self._maybe_queued = True
                if due is not None and due <= datetime.now(UTC):
                    self._maybe_queued = True
                    due = None
                while self._maybe_queued and self.has_capacity():
                    # A few at a time: one query per wake-up when the queue is short, and
                    # the other workers still get their share of a burst.
                    limit = min(CLAIM_BATCH, self.concurrency - len(self._tasks))
                    async with self.pool.connection() as conn:  # one atomic statement
                        claimed = await run_rows.claim(
                            conn,
                            worker=self.worker_id,
                            lease_seconds=self.lease_seconds,
                            limit=limit,
                            per_owner=self.owner_share,
                        )
                    for run in sorted(claimed, key=lambda row: (row["created_at"], row["run_id"])):
                        self.launch(run, run.pop("assistant"))
                    if len(claimed) < limit:
                        self._maybe_queued = False  # the queue is empty (for this worker)
                timeout = max(0.01, next_sweep - time.monotonic())
                if due is not None:
                    timeout = max(0.01, min(timeout, (due - datetime.now(UTC)).total_seconds()))
            except Exception as exc:
                # A database restart: retry soon (the pools validate and reconnect quickly),
                # so claims resume within a fraction of a second of its return.
                if (fault := infrastructure_fault(exc)) is not None:
                    log.warning("claim loop: database unavailable", extra={"error": fault})
                    timeout = 0.2
                else:
                    log.exception("claim loop error")
                    timeout = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _sweep(self) -> None:
        """Requeue runs whose worker died; end those a client cancelled meanwhile."""
        requeued = await sweep_expired(self.engine, self.events, self.completions)
        if requeued:
            log.warning(
                "took over runs whose lease expired", extra={"runs": [str(r) for r in requeued]}
            )

    def launch(self, run: RunRow, assistant: RunAssistant | None) -> None:
        """Execute a run this worker has claimed (its full row), for `assistant` (None: it
        was deleted; the run fails)."""
        run_id = str(run["run_id"])
        self._epochs[run_id] = int(run["lease_epoch"])
        self._owners[run_id] = owner = str(run["owner"])
        self._controls[run_id] = RunControl()
        if cancel_action := run.get("cancel_action"):
            self._cancel_actions[run_id] = cancel_action
        self.events.attach(run_id)
        task = asyncio.create_task(self._execute(run, assistant), name=f"run-{run_id}")
        self._tasks[run_id] = task

        def _done(_: asyncio.Task[None]) -> None:
            self.events.detach(run_id)
            self._tasks.pop(run_id, None)
            self._epochs.pop(run_id, None)
            self._controls.pop(run_id, None)
            self._cancel_actions.pop(run_id, None)
            self._ending.discard(run_id)
            if self._running_for(owner) + 1 >= self.owner_share:
                # Its owner was at its share here: the claim query may have held its other
                # runs back, so this slot is worth a query even after an empty claim.
                self._maybe_queued = True
            self._owners.pop(run_id, None)
            self._wake.set()

        task.add_done_callback(_done)

    # execution ------------------------------------------------------------

    async def _execute(self, run: RunRow, assistant: RunAssistant | None) -> None:
        tracer = tracing.current()
        if tracer is None:
            await self._execute_run(run, assistant, None)
            return
        kwargs = run["kwargs"]
        with tracer.span(
            f"run {kwargs['graph_id']}",
            parent=tracer.extract(kwargs.get("traceparent")),
            attributes={
                "trellis.run_id": str(run["run_id"]),
                "trellis.thread_id": str(run["thread_id"]),
                "trellis.assistant_id": str(run["assistant_id"]),
                "trellis.graph_id": kwargs["graph_id"],
                "trellis.attempt": int(run["attempt"]),
            },
        ) as span:
            await self._execute_run(run, assistant, span)

    async def _execute_run(
        self, run: RunRow, assistant: RunAssistant | None, span: Span | None
    ) -> None:
        run_id = str(run["run_id"])
        thread_id = run["thread_id"]
        kwargs = run["kwargs"]
        attempt = int(run["attempt"])
        started = time.perf_counter()
        CURRENT_FENCE.set(Fence(run["run_id"], self.worker_id, int(run["lease_epoch"])))
        remember_lists()
        bind_run(
            run_id=run_id,
            thread_id=str(thread_id),
            assistant_id=str(run["assistant_id"]),
            **({"request_id": kwargs["request_id"]} if "request_id" in kwargs else {}),
        )
        log.info(
            "run started",
            extra={"run_id": run_id, "thread_id": str(thread_id), "attempt": attempt},
        )
        metrics.run_started(kwargs["graph_id"])
        await self.events.publish(run_id, "metadata", dumps({"run_id": run_id, "attempt": attempt}))
        status: Ending = "success"
        error: JsonObject | None = None
        final = FinalCheckpoint()
        loaded = self.registry.get(kwargs["graph_id"])
        quiet = kwargs.get("waited", False) and not kwargs.get("stream_resumable")
        deadline: asyncio.Timeout | None = None
        limit = self.limits.timeout_seconds
        try:
            if assistant is None:
                raise LookupError(f"assistant {run['assistant_id']} no longer exists")
            if loaded is None:
                raise LookupError(f"graph {kwargs['graph_id']!r} is no longer served")
            payload = graph_input(kwargs)
            if attempt > 1 and await self._made_progress(thread_id, run_id):
                payload = None  # resume from the last checkpoint of this run
            context = self.limits.clamp_context(run_context(run, assistant))
            config = self.limits.clamp(build_config(run, assistant, attempt))
            if self.measure or span is not None:
                config = with_telemetry(config, kwargs["graph_id"], measure=self.measure, span=span)
            limit = self.limits.timeout_for(config)
            # Measured from the run's first start: a takeover does not restart the clock.
            begun = run.get("started_at") or datetime.now(UTC)
            elapsed = max(0.0, (datetime.now(UTC) - begun).total_seconds())
            deadline = asyncio.timeout(limit - elapsed)
            factory_config = cast(
                RunnableConfig, {**config, "configurable": dict(config["configurable"])}
            )
            async with (
                deadline,
                loaded.open(
                    "threads.create_run",
                    config=factory_config,
                    context=context,
                    user=RunUser.of(run),
                ) as graph,
            ):
                fitted = fit_context(graph, context, run["owner"])
                drop_unfitted(config, context, fitted)
                first = self.measure
                async for name, data in stream_run(
                    graph,
                    payload,
                    config,
                    modes=kwargs.get("stream_mode") or ["values"],
                    subgraphs=bool(kwargs.get("stream_subgraphs")),
                    context=fitted,
                    durability=kwargs.get("durability") or self.default_durability,
                    interrupt_before=kwargs.get("interrupt_before"),
                    interrupt_after=kwargs.get("interrupt_after"),
                    control=self._controls[run_id],
                    final=final,
                ):
                    if first:
                        first = False
                        metrics.RUN_FIRST_EVENT.labels(kwargs["graph_id"]).observe(
                            time.perf_counter() - started
                        )
                    if quiet and not await self.events.listened(run_id):
                        continue  # its request waits for the output; nobody follows its events
                    await self.events.publish(run_id, name, dumps(data))
        except GraphDrained:
            if self._stopping:
                await self._requeue(run_id)
                return
            status = "interrupted"
        except LeaseLost:
            metrics.fenced_write("checkpoint")
            log.error("lost the lease mid-run; another worker owns it", extra={"run_id": run_id})
            return
        except asyncio.CancelledError:
            action = self._cancel_actions.get(run_id, "interrupt")
            if action == "requeue":
                await self._requeue(run_id)
                raise
            if action == "lost":
                raise
            status = "rollback" if action == "rollback" else "interrupted"
        except Exception as exc:
            fault = infrastructure_fault(exc)
            if isinstance(exc, TimeoutError) and deadline is not None and deadline.expired():
                status = "timeout"
                error = {
                    "error": "RunTimeout",
                    "message": f"the run exceeded its time limit of {limit:g} s",
                }
            elif fault is not None and attempt < self.fault_attempts:
                await self._retry_later(run_id, attempt, fault)
                return
            elif fault is not None:
                status = "error"
                error = {
                    "error": "InfrastructureFault",
                    "message": f"gave up after {attempt} attempts interrupted by an "
                    f"infrastructure fault (not an error of the graph): {fault}",
                }
            else:
                status = "error"
                error = {"error": type(exc).__name__, "message": str(exc)}
            log.warning(
                "run failed",
                extra={"run_id": run_id, "thread_id": str(thread_id), "error": error},
            )
        if span is not None:
            span.set_attribute("trellis.status", status)
            if error is not None:
                span.set_attribute("trellis.error", str(error.get("error")))
        # The `error` event is published once the outcome is recorded (`_finish`): a run
        # that is retried instead never tells its readers it failed.
        await self._finish(run, loaded, status, error, started, final)

    async def _made_progress(self, thread_id: uuid.UUID, run_id: str) -> bool:
        latest = await self.checkpointer.aget_tuple(
            {"configurable": {"thread_id": str(thread_id), "checkpoint_ns": ""}}
        )
        return latest is not None and str(latest.metadata.get("run_id")) == run_id

    async def _retry_later(self, run_id: str, attempt: int, fault: str) -> None:
        """Requeue a run an infrastructure fault interrupted: the same run resumes from its
        last checkpoint after a backoff, as attempt + 1. While the database stays down the
        release cannot be written either; then the run's lease lapses (no heartbeat renews
        it once this task ends) and the sweep requeues it when the database is back."""
        delay = min(MAX_FAULT_BACKOFF, self.fault_backoff_seconds * 2 ** (attempt - 1))
        epoch = self._epochs.get(run_id, -1)
        log.warning(
            "run interrupted by an infrastructure fault; retrying",
            extra={"run_id": run_id, "attempt": attempt, "error": fault, "delay_s": delay},
        )
        self._ending.add(run_id)  # not to be cancelled while handing it back

        async def release() -> bool:
            async with self.engine.begin() as conn:
                released = await run_rows.release(
                    conn, uuid.UUID(run_id), worker=self.worker_id, epoch=epoch,
                    delay_seconds=delay,
                )  # fmt: skip
                await run_rows.notify(conn, RUNS_CHANNEL)
                return released

        try:
            await self._persistently(release, self.lease_seconds)
        except Exception as exc:
            log.warning(
                "could not requeue the run; its lease will lapse",
                extra={"run_id": run_id, "error": infrastructure_fault(exc) or repr(exc)},
            )

    async def _persistently(self, write: Callable[[], Awaitable[T]], seconds: float) -> T:
        """`write()`, retried through infrastructure faults for up to `seconds`."""
        deadline = time.monotonic() + seconds
        pause = 0.1
        while True:
            try:
                return await write()
            except Exception as exc:
                fault = infrastructure_fault(exc)
                if fault is None or time.monotonic() + pause > deadline:
                    raise
                log.info("database unavailable; retrying a write", extra={"error": fault})
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def _requeue(self, run_id: str) -> None:
        """Hand a run back to the queue so another worker resumes it now."""
        async with self.engine.begin() as conn:
            await run_rows.release(conn, uuid.UUID(run_id), worker=self.worker_id)
            await run_rows.notify(conn, RUNS_CHANNEL)
        log.info("run handed back to the queue", extra={"run_id": run_id})

    async def _finish(
        self,
        run: RunRow,
        loaded: LoadedGraph | None,
        status: Ending,
        error: JsonObject | None,
        started: float,
        final: FinalCheckpoint | None = None,
    ) -> None:
        run_id = str(run["run_id"])
        thread_id = run["thread_id"]
        state: LatestState | None = None
        if loaded is not None:
            try:
                state = await self._persistently(
                    functools.partial(self._final_state, loaded, run, status, final),
                    FINISH_RETRY_SECONDS,
                )
            except Exception:
                log.exception("could not read the final state", extra={"run_id": run_id})
        interrupts = state.interrupts if state is not None else {}
        values: JsonValue = None
        omitted: list[str] = []
        if state is not None:
            values, omitted = bounded_values(state.values, self.thread_values_max_bytes)
        checkpoint_id = state.checkpoint_id if state is not None else None
        if status in FAILED or run.get("temporary"):
            checkpoint_id = None  # nothing to read: the output is stored whole
        elif state is not None and checkpoint_id is not None and status != "rollback":
            self.completions.offer(run_id, checkpoint_id, state.values)
        output: JsonObject | None
        thread_status: ThreadStatus
        if status in FAILED:
            output = {"__error__": error}
            thread_status = "error"
        else:
            # The values are the final checkpoint's: the run keeps only what is its own.
            output = self._own_output(run, state, checkpoint_id)
            stopped_early = status in ("interrupted", "rollback")
            has_next = state is not None and state.has_next
            thread_status = (
                "interrupted" if interrupts or (has_next and not stopped_early) else "idle"
            )
        self._ending.add(run_id)
        if status == "rollback":
            fenced, notices = await self._persistently(
                functools.partial(
                    self._record_rollback, run, thread_status, values, omitted, interrupts, error
                ),
                FINISH_RETRY_SECONDS,
            )
        else:
            # A run whose steps all finished must not fail because this write met a dead
            # connection: it is retried (fenced: a write that did commit before its
            # connection broke makes the retry find the lease gone, see below).
            fenced, notices = await self._persistently(
                functools.partial(
                    self._record_outcome,
                    run,
                    run_rows.Outcome(
                        status,
                        error,
                        output,
                        checkpoint_id,
                        thread_status,
                        values,
                        omitted,
                        interrupts,
                    ),
                ),
                FINISH_RETRY_SECONDS,
            )
        if not fenced and status != "rollback" and await self._recorded(run_id, status):
            fenced = True  # a retried write whose first try committed before the connection broke
        if not fenced:
            metrics.fenced_write("outcome")
            log.error("run ended without its lease; outcome discarded", extra={"run_id": run_id})
            return
        if status in FAILED and error is not None:
            await self.events.publish(run_id, "error", dumps(error))
        if self.hooks is not None:
            self.hooks.notify(notices)
        webhook = run["kwargs"].get("webhook")
        if webhook and self.webhooks is not None:
            final = to_jsonable(state.values) if state is not None else None
            self.webhooks.send(webhook, run_payload(run, status, final), event="run.completed")
        if run.get("temporary"):
            status_of_run = "interrupted" if status == "rollback" else status
            self.completions.hand_over(run_id, status_of_run, output)
            await self._delete_temporary_thread(thread_id)
        await self.events.end(
            run_id,
            "interrupted" if status == "rollback" else status,
            resumable=bool(run["kwargs"].get("stream_resumable")),
        )
        self.completions.done(run_id)
        metrics.run_finished(run["kwargs"]["graph_id"], status, time.perf_counter() - started)
        log.info(
            "run finished",
            extra={
                "run_id": run_id,
                "thread_id": str(thread_id),
                "status": status,
                "attempt": run["attempt"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    async def _final_state(
        self, loaded: LoadedGraph, run: RunRow, status: Ending, final: FinalCheckpoint | None
    ) -> LatestState:
        """The thread's state after the run (for a rollback: the state it goes back to)."""
        thread_id, run_id = run["thread_id"], str(run["run_id"])
        if status == "success" and final and final.next == [] and final.values is not None:
            # It ran to the end: the graph's last checkpoint is the state, in memory
            # (nothing left to run, so no interrupt either). No need to read it back.
            return LatestState(final.values, final.checkpoint_id, {}, False)
        if status != "rollback":
            async with loaded.open("threads.read") as graph:
                return await latest_state(graph, str(thread_id))
        if (before := await self._checkpoint_before(thread_id, run_id)) is not None:
            # The state the thread goes back to, read before anything is deleted, so
            # that the deletions and the thread's new state commit together.
            async with loaded.open("threads.read") as graph:
                return await latest_state(graph, str(thread_id), checkpoint_id=before)
        return LatestState({}, None, {}, False)  # it wrote the first checkpoints

    async def _record_rollback(
        self,
        run: RunRow,
        thread_status: ThreadStatus,
        values: JsonValue,
        omitted: list[str],
        interrupts: Interrupts,
        error: JsonObject | None,
    ) -> tuple[bool, list[Notice]]:
        """End a run as rolled back: its checkpoints and row deleted, its thread's state
        restored, in one transaction fenced on the lease. Returns (fenced, notices)."""
        run_id, thread_id = str(run["run_id"]), run["thread_id"]
        epoch = self._epochs.get(run_id, -1)
        notices: list[Notice] = []
        async with self.engine.begin() as conn:
            await thread_rows.lock(conn, thread_id)  # before the run row, as creation does
            fenced = await run_rows.finish(
                conn, run["run_id"], status="interrupted", worker=self.worker_id, epoch=epoch
            )
            if fenced:
                await checkpoints.rollback_checkpoints(conn, thread_id, run_id)
                await run_rows.delete_run(conn, owner=run["owner"], run_id=run["run_id"])
                queued = await thread_rows.set_state(
                    conn,
                    thread_id,
                    status=thread_status,
                    values=values,
                    values_omitted=omitted,
                    interrupts=interrupts,
                    error=error,
                    busy_if_queued=True,
                )
                if self.hooks is not None:  # approvals commit with the state
                    notices = await self.hooks.on_run_finished(
                        conn, run, interrupts if values is not None else None
                    )
                await run_rows.notify(conn, DONE_CHANNEL, run_id)
                if queued:
                    await run_rows.notify(conn, RUNS_CHANNEL)
        return fenced, notices

    def _own_output(
        self, run: RunRow, state: LatestState | None, checkpoint_id: str | None
    ) -> JsonObject | None:
        """What a run that did not fail stores of its output: its pending interrupts (None
        when too large to keep: they are read back with the values). A run without a
        checkpoint to read from (none was written, or its stateless thread goes away now:
        `checkpoint_id` None) stores the whole output, as before migration 0006."""
        pending = [i for items in (state.interrupts if state else {}).values() for i in items]
        if checkpoint_id is None:
            values = state.values if state is not None else {}
            whole: JsonObject = to_jsonable(values) if isinstance(values, Mapping) else {}
            if pending:
                whole["__interrupt__"] = cast(JsonValue, pending)
            return whole
        if not pending:
            return None
        if len(dumps(pending)) > self.thread_values_max_bytes:
            return {"__interrupt__": None}
        return {"__interrupt__": cast(JsonValue, pending)}

    async def _record_outcome(
        self, run: RunRow, outcome: run_rows.Outcome
    ) -> tuple[bool, list[Notice]]:
        """The run's outcome and its thread's state, fenced on the lease: one call, or one
        transaction with the approvals its pending interrupts open. Returns (fenced, notices)."""
        epoch = self._epochs.get(str(run["run_id"]), -1)
        # Approvals follow the final state, when it could be read: with nothing pending, the
        # thread's pending approvals are stale (superseded in the same call); pending
        # interrupts open approvals, in the approvals service's own transaction.
        review = self.hooks is not None and outcome.values is not None and not run.get("temporary")
        finish = functools.partial(
            run_rows.finish_with_thread,
            run_id=run["run_id"],
            thread_id=run["thread_id"],
            outcome=outcome,
            worker=self.worker_id,
            epoch=epoch,
        )
        if not (review and any(outcome.interrupts.values())):
            async with self.pool.connection() as conn:
                return await finish(conn, supersede_approvals=review) is not None, []
        assert self.hooks is not None
        async with self.engine.begin() as conn:  # approvals commit with the state, or neither
            if await finish(conn, supersede_approvals=False) is None:
                return False, []
            return True, await self.hooks.on_run_finished(conn, run, outcome.interrupts)

    async def _recorded(self, run_id: str, status: Ending) -> bool:
        """Whether the run's row already shows `status` with no lease (its outcome written)."""
        try:
            async with self.pool.connection() as conn:
                return await run_rows.status(conn, uuid.UUID(run_id)) == status
        except Exception:
            return False

    async def _checkpoint_before(self, thread_id: uuid.UUID, run_id: str) -> str | None:
        """The thread's latest checkpoint that `run_id` did not write: where a rollback
        returns it to (None when the run wrote its first)."""
        async with self.engine.connect() as conn:
            return await checkpoints.checkpoint_before(conn, thread_id, run_id)

    async def _delete_temporary_thread(self, thread_id: uuid.UUID) -> None:
        await self.checkpointer.adelete_thread(str(thread_id))
        async with self.engine.begin() as conn:
            await run_rows.delete_temporary_thread(conn, thread_id)
