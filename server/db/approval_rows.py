"""Approval rows: one per interrupt a run reached, always read and decided within an owner.

Every state change is a single conditional statement (`... WHERE status = 'pending'`),
so concurrent deciders, resumes and finishing runs cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, RowMapping, Table, and_, func, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.types import Approval, Json, JsonValue
from server.db.engine import Conn, columns, fetch_all, plain
from server.db.tables import Approval as ApprovalTable

A: Table = ApprovalTable.__table__  # type: ignore[assignment]
PUBLIC = [
    A.c.approval_id,
    A.c.thread_id,
    A.c.run_id,
    A.c.assistant_id,
    A.c.interrupt_id,
    A.c.task_id,
    A.c.value,
    A.c.status,
    A.c.decision,
    A.c.decided_by,
    A.c.decided_at,
    A.c.resume_run_id,
    A.c.expires_at,
    A.c.created_at,
    A.c.updated_at,
]
DECIDED = ("approved", "rejected", "edited")
"""Statuses a human (or a plain `command.resume`) put an approval in."""

Expiry = datetime | timedelta | None
"""An absolute deadline, a lifetime counted from the database's `now()`, or none."""


def _out(row: RowMapping | Mapping[str, object]) -> Approval:
    return cast(Approval, plain(row))


def _expiry(expires: Expiry) -> ColumnElement[datetime] | datetime | None:
    if isinstance(expires, timedelta):
        return func.now() + expires
    return expires


def _not_expired() -> ColumnElement[bool]:
    return (A.c.expires_at.is_(None)) | (A.c.expires_at > func.now())


async def upsert_pending(
    conn: AsyncConnection,
    *,
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    assistant_id: uuid.UUID,
    owner: str,
    interrupt_id: str,
    task_id: str,
    value: JsonValue,
    expires: Expiry,
    approval_id: uuid.UUID,
) -> Approval | None:
    """Record a pending interrupt; the row if it is new (or reopened), None if already known.

    Idempotent: a run taken over after a crash meets the same interrupt and changes
    nothing. The one update is a reopen: when the resume run of a decided approval
    ends with that very interrupt still pending (the answer never took, e.g. the run
    failed or was cancelled first), the approval is pending again.
    """
    stmt = pg_insert(A).values(
        approval_id=approval_id,
        thread_id=thread_id,
        run_id=run_id,
        assistant_id=assistant_id,
        owner=owner,
        interrupt_id=interrupt_id,
        task_id=task_id,
        value=value,
        expires_at=_expiry(expires),
    )
    upsert = stmt.on_conflict_do_update(
        constraint="uq_approvals_thread_interrupt",
        set_={
            "status": "pending",
            "run_id": stmt.excluded.run_id,
            "value": stmt.excluded.value,
            "expires_at": stmt.excluded.expires_at,
            "decision": None,
            "decided_by": None,
            "decided_at": None,
            "resume_run_id": None,
            "updated_at": func.now(),
        },
        where=and_(A.c.status.in_(DECIDED), A.c.resume_run_id == stmt.excluded.run_id),
    ).returning(*PUBLIC)
    row = (await conn.execute(upsert)).first()
    return _out(row._mapping) if row is not None else None


async def supersede_stale(
    conn: Conn, thread_id: uuid.UUID, pending_interrupts: list[str]
) -> list[Approval]:
    """Mark the thread's pending approvals whose interrupt is no longer pending as superseded."""
    rows = await fetch_all(
        conn,
        "UPDATE approvals SET status = 'superseded', updated_at = now() "
        "WHERE thread_id = %s AND status = 'pending' AND interrupt_id <> ALL(%s::text[]) "
        f"RETURNING {columns(*PUBLIC)}",
        (thread_id, pending_interrupts),
    )
    return [_out(row) for row in rows]


async def expire_due(conn: AsyncConnection, *, owner: str) -> None:
    """Mark the owner's pending approvals past their deadline as expired.

    Rows another transaction holds (a decision, a finishing run) are skipped, so a read
    never waits on, or deadlocks with, a writer; the next read expires them.
    """
    due = (
        select(A.c.approval_id)
        .where(
            A.c.owner == owner,
            A.c.status == "pending",
            A.c.expires_at.is_not(None),
            A.c.expires_at <= func.now(),
        )
        .with_for_update(skip_locked=True)
    )
    await conn.execute(
        update(A)
        .where(A.c.approval_id.in_(due.scalar_subquery()), A.c.status == "pending")
        .values(status="expired", updated_at=func.now())
    )


async def mark(conn: AsyncConnection, approval_id: uuid.UUID, status: str) -> Approval | None:
    """Close a pending approval without a decision (`superseded`, `expired`)."""
    stmt = (
        update(A)
        .where(A.c.approval_id == approval_id, A.c.status == "pending")
        .values(status=status, updated_at=func.now())
        .returning(*PUBLIC)
    )
    row = (await conn.execute(stmt)).first()
    return _out(row._mapping) if row is not None else None


async def get(conn: AsyncConnection, *, owner: str, approval_id: uuid.UUID) -> Approval | None:
    """The approval if it belongs to `owner`."""
    stmt = select(*PUBLIC).where(A.c.approval_id == approval_id, A.c.owner == owner)
    row = (await conn.execute(stmt)).first()
    return _out(row._mapping) if row is not None else None


async def search(
    conn: AsyncConnection,
    *,
    owner: str,
    status: str | None,
    thread_id: uuid.UUID | None,
    assistant_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Approval], int]:
    """A page of the owner's approvals, newest first, and how many match in all."""
    where = and_(
        true(),
        A.c.owner == owner,
        *([A.c.status == status] if status else []),
        *([A.c.thread_id == thread_id] if thread_id else []),
        *([A.c.assistant_id == assistant_id] if assistant_id else []),
    )
    total = int((await conn.execute(select(func.count()).select_from(A).where(where))).scalar_one())
    stmt = (
        select(*PUBLIC)
        .where(where)
        .order_by(A.c.created_at.desc(), A.c.approval_id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_out(row._mapping) for row in (await conn.execute(stmt)).all()], total


async def decide(
    conn: AsyncConnection,
    *,
    approval_id: uuid.UUID,
    owner: str,
    thread_id: uuid.UUID,
    status: str,
    decision: Json,
    decided_by: str,
    resume_run_id: uuid.UUID,
) -> Approval | None:
    """Record a decision if the approval is still pending and unexpired: one winner, or None."""
    stmt = (
        update(A)
        .where(
            A.c.approval_id == approval_id,
            A.c.owner == owner,
            A.c.thread_id == thread_id,
            A.c.status == "pending",
            _not_expired(),
        )
        .values(
            status=status,
            decision=decision,
            decided_by=decided_by,
            decided_at=func.now(),
            resume_run_id=resume_run_id,
            updated_at=func.now(),
        )
        .returning(*PUBLIC)
    )
    row = (await conn.execute(stmt)).first()
    return _out(row._mapping) if row is not None else None


async def close_for_resume(
    conn: AsyncConnection,
    *,
    thread_id: uuid.UUID,
    interrupt_ids: list[str] | None,
    resume: object,
    decided_by: str,
    resume_run_id: uuid.UUID,
) -> list[Approval]:
    """Close the thread's pending approvals answered by a plain `command.resume`.

    `interrupt_ids` narrows it to the interrupts a resume map names; None closes all.
    """
    stmt = (
        update(A)
        .where(A.c.thread_id == thread_id, A.c.status == "pending")
        .values(
            status="approved",
            decision={"decision": "resume", "value": resume, "comment": None},
            decided_by=decided_by,
            decided_at=func.now(),
            resume_run_id=resume_run_id,
            updated_at=func.now(),
        )
        .returning(*PUBLIC)
    )
    if interrupt_ids is not None:
        stmt = stmt.where(A.c.interrupt_id.in_(interrupt_ids))
    return [_out(row._mapping) for row in (await conn.execute(stmt)).all()]
