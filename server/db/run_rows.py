"""Run rows: the run records the API shows and the queue workers claim from.

A run is `pending` until a worker claims it, then `running` under a lease (owner,
epoch, expiry) until it ends. The partial unique index on running runs makes
"one active run per thread" a database guarantee; claim order per thread is
creation order, so `enqueue` is strict FIFO.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import psycopg
from psycopg.rows import TupleRow
from sqlalchemy import Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core import metrics
from server.core.metrics import QueueStats
from server.core.types import (
    AbandonedRun,
    ActiveRun,
    CancelAction,
    Interrupts,
    Json,
    JsonObject,
    JsonValue,
    MultitaskStrategy,
    Run,
    RunKwargs,
    RunRow,
    RunStatus,
    ThreadStatus,
)
from server.db.engine import Conn, columns, fetch_all, fetch_one, jsonb, plain
from server.db.tables import Run as RunTable

R: Table = RunTable.__table__  # type: ignore[assignment]
PUBLIC = [
    R.c.run_id,
    R.c.thread_id,
    R.c.assistant_id,
    R.c.created_at,
    R.c.updated_at,
    R.c.status,
    R.c.metadata,
    R.c.kwargs,
    R.c.multitask_strategy,
]
_PUBLIC = columns(*PUBLIC)

THREAD_RUNS_CHANNEL = "trellis_thread_runs"
"""NOTIFYed with a thread's id when a run is created on it (in the statement that inserts
the run, so delivered on its commit): thread streams learn of the thread's next run."""

_INSERT = f"""
    SELECT r.*, pg_notify('{THREAD_RUNS_CHANNEL}', r.thread_id::text) AS notified
    FROM trellis_insert_run(
        %(run_id)s, %(thread_id)s, %(assistant_id)s, %(owner)s, %(metadata)s, %(kwargs)s,
        %(strategy)s, %(temporary)s, %(after)s, %(worker)s, %(lease)s,
        %(thread_metadata)s, %(wake)s) r
"""


@metrics.statement("run.insert")
async def insert(
    conn: Conn,
    *,
    run_id: uuid.UUID,
    thread_id: uuid.UUID,
    assistant_id: uuid.UUID,
    owner: str,
    metadata: Json,
    kwargs: RunKwargs,
    multitask_strategy: MultitaskStrategy,
    temporary: bool,
    after_seconds: float,
    thread_metadata: Json,
    wake: str | None,
    claim_for: str | None = None,
    lease_seconds: float = 0,
) -> RunRow:
    """Insert a run: pending, or already running under `claim_for`'s lease (the local fast path).

    The same statement marks its thread (locked by the caller) `busy`, merging
    `thread_metadata` into the thread's metadata, and NOTIFYs channel `wake` on commit when
    given (so workers elsewhere claim the run). Returns the full run row (UUIDs and
    datetimes as Python objects).
    """
    row = await fetch_one(
        conn,
        _INSERT,
        {
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant_id,
            "owner": owner,
            "metadata": jsonb(metadata),
            "kwargs": jsonb(kwargs),
            "strategy": multitask_strategy,
            "temporary": temporary,
            "after": float(after_seconds),
            "worker": claim_for,
            "lease": float(lease_seconds),
            "thread_metadata": jsonb(thread_metadata),
            "wake": wake,
        },
    )
    assert row is not None
    row.pop("notified", None)
    return cast(RunRow, row)


_CREATE = f"""
    SELECT r.*, trellis_run_assistant(r.assistant_id) AS assistant,
           pg_notify('{THREAD_RUNS_CHANNEL}', r.thread_id::text) AS notified
    FROM trellis_create_run(
        %(owner)s, %(assistant_id)s, %(graphs)s, %(thread_id)s, %(run_id)s, %(metadata)s,
        %(kwargs)s, %(strategy)s, %(after)s, %(resume)s, %(worker)s, %(lease)s, %(wake)s) r
"""

REFUSALS = {
    "TR010": "no_assistant",
    "TR011": "graph_not_served",
    "TR012": "no_thread",
    "TR013": "busy",
    "TR014": "stop_earlier_runs",
    "TR015": "nothing_to_resume",
}
"""Why `create` refused (the SQLSTATEs `trellis_create_run` raises, migration 0005)."""


class Refused(Exception):
    """`create` wrote nothing; `reason` is one of `REFUSALS`' values."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@metrics.statement("run.create")
async def create(
    conn: Conn,
    *,
    owner: str,
    assistant_id: uuid.UUID,
    graphs: list[str],
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    metadata: Json,
    kwargs: RunKwargs,
    multitask_strategy: MultitaskStrategy,
    after_seconds: float,
    resume: bool,
    claim_for: str | None,
    lease_seconds: float,
    wake: str,
) -> RunRow:
    """Create a run on an existing thread in one call (`trellis_create_run`): the assistant
    visible to `owner` with its graph among `graphs`, the thread locked, the multitask
    check, the insert (claimed by `claim_for` when nothing is ahead of it and it is not
    delayed; otherwise `wake` is notified), the thread marked busy.

    Returns the full run row, with `assistant` (what an executor needs of it); raises
    `Refused` when it wrote nothing.
    """
    try:
        row = await fetch_one(
            conn,
            _CREATE,
            {
                "owner": owner,
                "assistant_id": assistant_id,
                "graphs": graphs,
                "thread_id": thread_id,
                "run_id": run_id,
                "metadata": jsonb(metadata),
                "kwargs": jsonb(kwargs),
                "strategy": multitask_strategy,
                "after": float(after_seconds),
                "resume": resume,
                "worker": claim_for,
                "lease": float(lease_seconds),
                "wake": wake,
            },
        )
    except psycopg.Error as exc:
        reason = REFUSALS.get(exc.sqlstate or "")
        if reason is None:
            raise
        raise Refused(reason, str(exc.diag.message_primary)) from exc
    assert row is not None
    row.pop("notified", None)
    return cast(RunRow, row)


def public(row: RunRow) -> Run:
    """The API view of a full run row."""
    full: Mapping[str, object] = row
    return cast(Run, plain({column.name: full[column.name] for column in PUBLIC}))


async def get(
    conn: Conn, *, owner: str, run_id: uuid.UUID, thread_id: uuid.UUID | None = None
) -> Run | None:
    """The run if it belongs to `owner` (and to `thread_id`, when given)."""
    row = await fetch_one(
        conn,
        f"SELECT {_PUBLIC} FROM runs WHERE run_id = %s AND owner = %s "
        "AND (%s::uuid IS NULL OR thread_id = %s::uuid)",
        (run_id, owner, thread_id, thread_id),
    )
    return cast(Run, plain(row)) if row is not None else None


async def status(conn: Conn, run_id: uuid.UUID) -> RunStatus | None:
    """The run's status; None when it is gone."""
    row = await fetch_one(conn, "SELECT status FROM runs WHERE run_id = %s", (run_id,))
    return row["status"] if row is not None else None


@dataclass(frozen=True)
class Result:
    """What a run's output is made of: its own record, and where its final values live."""

    status: RunStatus
    output: JsonValue
    """`__error__` or `__interrupt__` (None: neither); without a checkpoint (rows written
    before migration 0006, stateless runs, runs that wrote nothing), the whole output."""
    thread_id: uuid.UUID
    graph_id: str | None
    checkpoint_id: str | None
    checkpoint_ns: str


async def result(conn: Conn, run_id: uuid.UUID) -> Result | None:
    """The run's status, stored output and final checkpoint; None when it is gone."""
    row = await fetch_one(
        conn,
        "SELECT status, output, thread_id, kwargs->>'graph_id' AS graph_id, checkpoint_id, "
        "checkpoint_ns FROM runs WHERE run_id = %s",
        (run_id,),
    )
    return Result(**row) if row is not None else None


async def get_any(conn: AsyncConnection, run_id: uuid.UUID) -> RunRow | None:
    """The full run row, for the executor."""
    row = (await conn.execute(select(R).where(R.c.run_id == run_id))).first()
    return cast(RunRow, dict(row._mapping)) if row is not None else None


async def list_for_thread(
    conn: AsyncConnection,
    *,
    owner: str,
    thread_id: uuid.UUID,
    limit: int,
    offset: int,
    status: str | None,
) -> list[Run]:
    """The thread's runs, newest first."""
    stmt = select(*PUBLIC).where(R.c.thread_id == thread_id, R.c.owner == owner)
    if status:
        stmt = stmt.where(R.c.status == status)
    stmt = stmt.order_by(R.c.created_at.desc(), R.c.run_id.desc()).limit(limit).offset(offset)
    return [cast(Run, plain(row._mapping)) for row in (await conn.execute(stmt)).all()]


async def ids_for_thread(conn: Conn, thread_id: uuid.UUID) -> list[str]:
    """Every run of a thread (their events are keyed by run)."""
    rows = await fetch_all(conn, "SELECT run_id FROM runs WHERE thread_id = %s", (thread_id,))
    return [str(row["run_id"]) for row in rows]


@dataclass(frozen=True)
class ThreadRun:
    """A run as a thread's stream follows it: in creation order, after a cursor."""

    run_id: str
    status: RunStatus
    graph_id: str | None
    assistant_id: str
    created_at: datetime


async def thread_runs_after(
    conn: Conn,
    *,
    owner: str,
    thread_id: uuid.UUID,
    after: tuple[datetime, str] | None,
    limit: int = 100,
) -> list[ThreadRun] | None:
    """The owner's runs of a thread created after `after` (a `(created_at, run_id)` cursor),
    oldest first; None when the thread is gone or not the owner's."""
    rows = await fetch_all(
        conn,
        "SELECT r.run_id, r.status, r.kwargs->>'graph_id' AS graph_id, r.assistant_id, "
        "r.created_at FROM threads t LEFT JOIN runs r ON r.thread_id = t.thread_id "
        "AND r.owner = t.owner AND (%(at)s::timestamptz IS NULL "
        "OR (r.created_at, r.run_id) > (%(at)s::timestamptz, %(rid)s::uuid)) "
        "WHERE t.thread_id = %(tid)s AND t.owner = %(owner)s "
        "ORDER BY r.created_at, r.run_id LIMIT %(limit)s",
        {
            "tid": thread_id,
            "owner": owner,
            "at": after[0] if after else None,
            "rid": after[1] if after else None,
            "limit": limit,
        },
    )
    if not rows:
        return None
    return [
        ThreadRun(
            run_id=str(row["run_id"]),
            status=row["status"],
            graph_id=row["graph_id"],
            assistant_id=str(row["assistant_id"]),
            created_at=row["created_at"],
        )
        for row in rows
        if row["run_id"] is not None
    ]


async def thread_runs_latest(conn: Conn, *, owner: str, thread_id: uuid.UUID) -> ThreadRun | None:
    """The owner's newest run of a thread."""
    row = await fetch_one(
        conn,
        "SELECT run_id, status, kwargs->>'graph_id' AS graph_id, assistant_id, created_at "
        "FROM runs WHERE thread_id = %s AND owner = %s ORDER BY created_at DESC, run_id DESC "
        "LIMIT 1",
        (thread_id, owner),
    )
    if row is None:
        return None
    return ThreadRun(
        run_id=str(row["run_id"]),
        status=row["status"],
        graph_id=row["graph_id"],
        assistant_id=str(row["assistant_id"]),
        created_at=row["created_at"],
    )


async def active_for_thread(conn: Conn, thread_id: uuid.UUID) -> list[ActiveRun]:
    """Pending and running runs of a thread, oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT run_id, status FROM runs WHERE thread_id = %s "
        "AND status IN ('pending', 'running') ORDER BY created_at, run_id",
        (thread_id,),
    )
    return [cast(ActiveRun, plain(row)) for row in rows]


async def active_for_assistant(conn: Conn, assistant_id: uuid.UUID) -> list[tuple[str, str]]:
    """Pending and running runs of an assistant, as `(thread_id, run_id)`, oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT thread_id, run_id FROM runs WHERE assistant_id = %s "
        "AND status IN ('pending', 'running') ORDER BY created_at, run_id",
        (assistant_id,),
    )
    return [(str(row["thread_id"]), str(row["run_id"])) for row in rows]


async def delete_for_assistant(conn: Conn, assistant_id: uuid.UUID) -> list[str]:
    """Delete every run record of an assistant; returns their ids (their events are keyed
    by run)."""
    rows = await fetch_all(
        conn, "DELETE FROM runs WHERE assistant_id = %s RETURNING run_id", (assistant_id,)
    )
    return [str(row["run_id"]) for row in rows]


_CLAIM = """
    WITH busy AS (  -- running runs per owner, across every worker
        SELECT owner, count(*) AS running FROM runs WHERE status = 'running' GROUP BY owner
    ), runnable AS (
        SELECT r.run_id, r.owner, r.created_at FROM runs r
        WHERE r.status = 'pending' AND r.not_before <= now()
          AND NOT EXISTS (SELECT 1 FROM runs x
                          WHERE x.thread_id = r.thread_id AND x.status = 'running')
          AND NOT EXISTS (SELECT 1 FROM runs y
                          WHERE y.thread_id = r.thread_id AND y.status = 'pending'
                            AND (y.created_at, y.run_id) < (r.created_at, r.run_id))
    ), ranked AS (  -- the nth runnable run of an owner would be its (running + n)th
        SELECT u.run_id, u.created_at,
               coalesce(b.running, 0)
                 + row_number() OVER (PARTITION BY u.owner ORDER BY u.created_at, u.run_id)
                 AS share
        FROM runnable u LEFT JOIN busy b ON b.owner = u.owner
    ), picked AS (  -- a locking CTE is evaluated once: exactly the rows it locked
        SELECT r.run_id FROM runs r JOIN ranked k ON k.run_id = r.run_id
        WHERE k.share <= %(per_owner)s AND r.status = 'pending'
        ORDER BY k.share, k.created_at, k.run_id  -- the owners running least go first
        LIMIT %(limit)s
        FOR UPDATE OF r SKIP LOCKED
    )
    UPDATE runs SET status = 'running', attempt = attempt + 1, lease_owner = %(worker)s,
           lease_epoch = lease_epoch + 1,
           lease_expires_at = now() + make_interval(secs => %(lease)s),
           started_at = coalesce(started_at, now()), updated_at = now()
    FROM picked WHERE runs.run_id = picked.run_id
    RETURNING runs.*, trellis_run_assistant(runs.assistant_id) AS assistant
"""


@metrics.statement("run.claim")
async def claim(
    conn: Conn, *, worker: str, lease_seconds: float, limit: int = 1, per_owner: int | None = None
) -> list[RunRow]:
    """Claim up to `limit` runnable runs (one per thread) under fresh leases.

    No owner gets more than `per_owner` running runs (counted across every worker): its
    further runs wait while other owners' start, so one identity cannot hold every slot.
    Owners with the fewest running runs go first, then the oldest runs. (Two workers
    claiming at the same instant may each see the same count, and pass the share by one.)

    Each row also carries what the executor needs of its assistant (`assistant`: id,
    graph, config, context, metadata; None if it was deleted meanwhile)."""
    params = {
        "worker": worker,
        "lease": float(lease_seconds),
        "limit": limit,
        "per_owner": per_owner if per_owner is not None else 2**31 - 1,
    }
    return cast(list[RunRow], await fetch_all(conn, _CLAIM, params))


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest delayed pending run becomes runnable."""
    stmt = select(func.min(R.c.not_before)).where(R.c.status == "pending")
    value: datetime | None = (await conn.execute(stmt)).scalar()
    return value


_QUEUE = text("""
    SELECT count(*) FILTER (WHERE not_before <= now()) AS due,
           count(*) FILTER (WHERE not_before > now()) AS delayed,
           coalesce(extract(epoch FROM now() - min(not_before) FILTER (WHERE not_before <= now())),
                    0)::float8 AS oldest
    FROM runs WHERE status = 'pending'
""")


@metrics.statement("run.queue_stats")
async def queue_stats(conn: AsyncConnection) -> QueueStats:
    """The queue on the `ix_runs_pending` index: due and delayed runs, the oldest due's wait."""
    row = (await conn.execute(_QUEUE)).one()
    return QueueStats(due=row.due, delayed=row.delayed, oldest_age_seconds=max(0.0, row.oldest))


@metrics.statement("run.finish")
async def finish(
    conn: Conn,
    run_id: uuid.UUID,
    *,
    status: RunStatus,
    worker: str,
    epoch: int,
    error: JsonObject | None = None,
    output: object = None,
) -> bool:
    """End a running run if this worker still holds its lease (fencing); False otherwise."""
    row = await fetch_one(
        conn,
        "UPDATE runs SET status = %s, error = %s, output = %s, ended_at = now(), "
        "updated_at = now(), lease_owner = NULL, lease_expires_at = NULL "
        "WHERE run_id = %s AND status = 'running' AND lease_owner = %s AND lease_epoch = %s "
        "RETURNING run_id",
        (status, jsonb(error), jsonb(output), run_id, worker, epoch),
    )
    return row is not None


@dataclass(frozen=True)
class Outcome:
    """How a run ended, and what its thread shows after it."""

    status: RunStatus
    error: JsonObject | None
    output: object
    """`__error__` or `__interrupt__` (`runs.output`); the whole output without a checkpoint."""
    checkpoint_id: str | None
    """The thread's latest checkpoint: the run's output is its values."""
    thread_status: ThreadStatus
    values: JsonValue
    """The thread row's bounded copy of the final values; None when they could not be read
    (the row's copy stays)."""
    values_omitted: list[str]
    """The top-level keys too large for `values`."""
    interrupts: Interrupts


@metrics.statement("run.finish_with_thread")
async def finish_with_thread(
    conn: Conn,
    run_id: uuid.UUID,
    thread_id: uuid.UUID,
    outcome: Outcome,
    *,
    worker: str,
    epoch: int,
    supersede_approvals: bool,
) -> str | None:
    """End a run and record its thread's status and state in one call (`trellis_finish_run`,
    migrations 0004 and 0006): the thread locked first, the run fenced on this worker's lease, the
    thread `busy` instead while it has queued runs, waiters and workers notified.

    Returns the thread's new status, or None when the lease is gone (nothing written).
    """
    row = await fetch_one(
        conn,
        "SELECT trellis_finish_run(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "AS status",
        (
            run_id,
            thread_id,
            worker,
            epoch,
            outcome.status,
            jsonb(outcome.error),
            jsonb(outcome.output),
            outcome.checkpoint_id,
            outcome.thread_status,
            outcome.values is not None,
            jsonb(outcome.values),
            outcome.values_omitted,
            jsonb(outcome.interrupts),
            supersede_approvals,
        ),
    )
    return None if row is None else row["status"]


async def notify(conn: Conn, channel: str, payload: str = "") -> None:
    """A Postgres NOTIFY, delivered when the transaction commits."""
    await fetch_one(conn, "SELECT pg_notify(%s, %s)", (channel, payload))


async def listen(conn: psycopg.AsyncConnection[TupleRow], channel: str) -> None:
    """LISTEN to `channel` (a constant, never client input) on a dedicated connection."""
    await conn.execute(f"LISTEN {channel}")


async def cancel_pending(conn: Conn, run_id: uuid.UUID) -> bool:
    """Mark a run that has not started as interrupted; False if it already started."""
    row = await fetch_one(
        conn,
        "UPDATE runs SET status = 'interrupted', updated_at = now(), ended_at = now() "
        "WHERE run_id = %s AND status = 'pending' RETURNING run_id",
        (run_id,),
    )
    return row is not None


async def release(
    conn: AsyncConnection,
    run_id: uuid.UUID,
    *,
    worker: str,
    epoch: int | None = None,
    delay_seconds: float = 0.0,
) -> bool:
    """Give a running run back to the queue (graceful shutdown, or an infrastructure fault:
    then fenced on `epoch`, and claimable again after `delay_seconds`): it resumes from its
    last checkpoint. False when this worker no longer held it."""
    conditions = [R.c.run_id == run_id, R.c.lease_owner == worker, R.c.status == "running"]
    if epoch is not None:
        conditions.append(R.c.lease_epoch == epoch)
    values: dict[str, object] = {
        "status": "pending",
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": func.now(),
    }
    if delay_seconds > 0:
        values["not_before"] = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, delay_seconds)
    result = await conn.execute(update(R).where(*conditions).values(**values))
    return result.rowcount > 0


async def request_cancel(conn: Conn, run_id: uuid.UUID, action: CancelAction) -> bool:
    """Record that a running run must stop; its worker (or the sweep, if it died) acts on it."""
    row = await fetch_one(
        conn,
        "UPDATE runs SET cancel_action = %s, updated_at = now() "
        "WHERE run_id = %s AND status = 'running' RETURNING run_id",
        (action, run_id),
    )
    return row is not None


_SWEEP = """
    UPDATE runs SET
        status = CASE WHEN cancel_action IS NULL THEN 'pending' ELSE 'interrupted' END,
        ended_at = CASE WHEN cancel_action IS NULL THEN NULL ELSE now() END,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    WHERE status = 'running' AND lease_expires_at < now() {only}
    RETURNING run_id, thread_id, owner, cancel_action,
              coalesce((kwargs->>'stream_resumable')::boolean, false) AS resumable
"""
_SWEEP_ALL = text(_SWEEP.format(only=""))
_SWEEP_ONE = text(_SWEEP.format(only="AND run_id = :run_id"))


@metrics.statement("run.sweep")
async def requeue_expired(
    conn: AsyncConnection, run_id: uuid.UUID | None = None
) -> tuple[list[uuid.UUID], list[AbandonedRun]]:
    """Runs whose lease lapsed (their worker died), or just `run_id`: requeued, or ended if
    cancelled meanwhile."""
    requeued: list[uuid.UUID] = []
    cancelled: list[AbandonedRun] = []
    statement = _SWEEP_ALL if run_id is None else _SWEEP_ONE
    params = {} if run_id is None else {"run_id": run_id}
    for row in (await conn.execute(statement, params)).all():
        if row.cancel_action is None:
            requeued.append(row.run_id)
        else:
            cancelled.append(cast(AbandonedRun, dict(row._mapping)))
    return requeued, cancelled


_RENEW = """
    UPDATE runs SET lease_expires_at = now() + make_interval(secs => %s)
    WHERE lease_owner = %s AND status = 'running' AND run_id = ANY(%s)
    RETURNING run_id, cancel_action
"""


@metrics.sync_statement("run.heartbeat")
def renew_leases(
    conn: psycopg.Connection[TupleRow],
    *,
    worker: str,
    lease_seconds: float,
    runs: list[uuid.UUID],
) -> dict[uuid.UUID, CancelAction | None]:
    """Extend `worker`'s leases on `runs` (synchronous: the heartbeat thread's own connection).

    Returns the runs whose lease it still held, each with the cancel action a client asked
    for meanwhile (None: keep going); a run missing from it was lost to another worker."""
    rows = conn.execute(_RENEW, (lease_seconds, worker, runs)).fetchall()
    return {row[0]: row[1] for row in rows}


async def delete_temporary_thread(conn: AsyncConnection, thread_id: uuid.UUID) -> None:
    """Delete a stateless run's thread once the run is over (its checkpoints go first)."""
    await conn.execute(text("DELETE FROM threads WHERE thread_id = :t"), {"t": thread_id})


async def delete_run(
    conn: Conn, *, owner: str, run_id: uuid.UUID, thread_id: uuid.UUID | None = None
) -> bool:
    """Delete a run record."""
    row = await fetch_one(
        conn,
        "DELETE FROM runs WHERE run_id = %s AND owner = %s "
        "AND (%s::uuid IS NULL OR thread_id = %s::uuid) RETURNING run_id",
        (run_id, owner, thread_id, thread_id),
    )
    return row is not None
