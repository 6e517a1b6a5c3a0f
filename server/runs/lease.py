"""Leases on running runs: the heartbeat that renews them, and the sweep of lapsed ones.

A worker holds each run it executes under a lease (owner, epoch, expiry). `Heartbeat`
renews an executor's leases from an OS thread; a run whose lease lapsed (its worker
died) is swept: requeued to resume from its last checkpoint, or ended if a client
cancelled it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Protocol

import psycopg
from psycopg.rows import TupleRow
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.core import metrics
from server.core.types import AbandonedRun, CancelAction
from server.db import checkpoints, run_rows, thread_rows
from server.runs.events import EventBus
from server.runs.signals import DONE_CHANNEL, Completions

log = logging.getLogger("trellis.runs")


class LeaseHolder(Protocol):
    """What the heartbeat needs of an executor."""

    @property
    def worker_id(self) -> str:
        """The owner its leases name."""
        ...

    @property
    def lease_seconds(self) -> float:
        """How long a renewed lease lasts."""
        ...

    def held(self) -> list[uuid.UUID]:
        """Runs it holds leases for (called from the heartbeat thread)."""
        ...

    def cancel(self, run_id: str, action: CancelAction) -> bool:
        """Stop a run it executes (called on its event loop)."""
        ...


class Heartbeat:
    """Renews an executor's leases from an OS thread with its own connection.

    A node that blocks the event loop cannot starve it, so a busy run never
    loses its lease to a second execution. The same round trip tells the
    executor about leases it lost and cancellations requested from elsewhere.
    """

    def __init__(self, conninfo: str, executor: LeaseHolder) -> None:
        self.conninfo = conninfo
        self.executor = executor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the thread; callbacks go to `loop`."""
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name="trellis-heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        executor = self.executor
        interval = executor.lease_seconds / 3
        conn: psycopg.Connection[TupleRow] | None = None
        while not self._stop.wait(interval):
            held = executor.held()
            if not held:
                continue
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2)
                renewed = run_rows.renew_leases(
                    conn,
                    worker=executor.worker_id,
                    lease_seconds=executor.lease_seconds,
                    runs=held,
                )
            except psycopg.Error:
                log.exception("lease renewal failed")
                conn = None
                continue
            for run_id in held:
                if run_id not in renewed:
                    loop.call_soon_threadsafe(executor.cancel, str(run_id), "lost")
                elif action := renewed[run_id]:
                    loop.call_soon_threadsafe(executor.cancel, str(run_id), action)
        if conn is not None:
            conn.close()


async def sweep_expired(
    engine: AsyncEngine,
    events: EventBus,
    completions: Completions,
    run_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Runs whose lease lapsed (their worker died): requeued, or ended if they were cancelled.

    Every process may sweep (workers do it periodically; a cancel with `wait` does it for its
    run). A cancelled run is finished here without running graph code. Returns the requeued.
    """
    async with engine.begin() as conn:
        requeued, cancelled = await run_rows.requeue_expired(conn, run_id)
        for run in cancelled:
            await end_abandoned(conn, run)
    for run in cancelled:
        await events.end(str(run["run_id"]), "interrupted", resumable=run["resumable"])
        completions.done(str(run["run_id"]))
    metrics.LEASE_TAKEOVERS.inc(len(requeued))
    return requeued


async def end_abandoned(conn: AsyncConnection, run: AbandonedRun) -> None:
    """Finish a cancelled run whose worker is gone (rolled back if asked); frees its thread."""
    thread_id = run["thread_id"]
    if run["cancel_action"] == "rollback":
        await checkpoints.rollback_checkpoints(conn, thread_id, str(run["run_id"]))
        await run_rows.delete_run(conn, owner=run["owner"], run_id=run["run_id"])
    await thread_rows.set_state(conn, thread_id, status="idle", busy_if_queued=True)
    await run_rows.notify(conn, DONE_CHANNEL, str(run["run_id"]))
