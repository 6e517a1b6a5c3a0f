"""ApprovalService: every `interrupt()` a run reaches becomes an approval a human decides.

An approval is recorded when the run that reached the interrupt finishes, in the
same transaction that records the thread's final state (so a crash leaves neither;
the run taken over meets the same interrupt and records it again). A decision is
one `UPDATE ... WHERE status = 'pending'` made inside the transaction that enqueues
the resume run: exactly one decider wins and gets a run, the others are refused.
A plain `command.resume` closes the approvals it answers the same way. A decision that
comes too late is refused with an `ApprovalClosed` error (`server.core.errors`: 409, with
the approval as it stands); `closed_error` says which.

Webhooks (`approval.created`, `approval.decided`) are sent after commit, in the
background, with retries; they are not durable across a process crash, the
approvals themselves are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.core.errors import (
    AlreadyDecided,
    ApprovalClosed,
    ApprovalExpired,
    ApprovalSuperseded,
    NotFound,
    NothingToResume,
)
from server.core.ids import require_uuid, uuid7
from server.core.schemas import RunCommand, RunCreate
from server.core.settings import Settings
from server.core.types import (
    Approval,
    ApprovalStatus,
    DecidedApproval,
    Interrupt,
    Interrupts,
    JsonValue,
    RunRow,
)
from server.db import approval_rows as rows
from server.db import thread_rows
from server.graph_host.registry import GraphRegistry
from server.graph_host.snapshot import thread_snapshot
from server.runs.hooks import Notice
from server.runs.webhooks import WebhookPolicy, deliver, webhook_error, webhook_target

if TYPE_CHECKING:
    from server.runs.manager import RunManager

log = logging.getLogger("trellis.approvals")

Decision = Literal["approve", "reject", "edit"]
"""What a human answers: go ahead, stop, or go ahead with an edited value."""

STATUS_OF: dict[str, ApprovalStatus] = {
    "approve": "approved",
    "reject": "rejected",
    "edit": "edited",
}


_CLOSED: dict[str, type[ApprovalClosed]] = {
    "superseded": ApprovalSuperseded,
    "expired": ApprovalExpired,
}


def closed_error(approval: Approval) -> ApprovalClosed:
    """The error that says why `approval` can no longer be decided."""
    status = approval["status"]
    kind: type[ApprovalClosed] = _CLOSED.get(status, AlreadyDecided)
    return kind(f"approval {approval['approval_id']} is {status}", approval)


def expiry_of(value: JsonValue, default_ttl: float | None) -> rows.Expiry:
    """The deadline an interrupt value asks for, else the default lifetime.

    A dict value may carry `expires_in_seconds` (a positive number) or `expires_at`
    (an ISO 8601 timestamp; UTC when it has no offset). Anything else is ignored.
    """
    if isinstance(value, dict):
        seconds = value.get("expires_in_seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
            return timedelta(seconds=seconds)
        deadline = value.get("expires_at")
        if isinstance(deadline, str):
            try:
                parsed = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return timedelta(seconds=default_ttl) if default_ttl else None


def pending_interrupts(
    interrupts: Mapping[str, Sequence[Interrupt]],
) -> list[tuple[str, str, JsonValue]]:
    """`(task_id, interrupt_id, value)` of each pending interrupt in a thread's snapshot."""
    return [
        (task_id, str(item["id"]), item.get("value"))
        for task_id, items in interrupts.items()
        for item in items
        if item.get("id")
    ]


def resumed_interrupts(resume: object, pending: Iterable[str]) -> list[str] | None:
    """The interrupt ids a resume answers: those a resume map names, or None for all."""
    known = set(pending)
    if isinstance(resume, dict) and resume and known and set(resume) <= known:
        return list(resume)
    return None


@dataclass(frozen=True)
class ApprovalWebhook:
    """POSTs approval events to one URL through the outbound guard, retrying with backoff."""

    url: str
    timeout: float
    attempts: int
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ApprovalWebhook | None:
        """The configured webhook, or None."""
        if not settings.approval_webhook_url:
            return None
        return cls(
            url=settings.approval_webhook_url,
            timeout=settings.approval_webhook_timeout_seconds,
            attempts=settings.approval_webhook_attempts,
            allow_private=settings.approval_webhook_allow_private,
        )

    async def deliver(self, event: str, approval: Mapping[str, object]) -> None:
        """Send one event; raises after the last failed attempt (a blocked URL is not retried)."""
        policy = WebhookPolicy(
            timeout=self.timeout, attempts=self.attempts, allow_private=self.allow_private
        )
        await deliver(self.url, {"event": event, "approval": approval}, event=event, policy=policy)


class ApprovalService:
    """Records, lists and decides approvals; hooks into run creation and run completion."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        registry: GraphRegistry,
        default_ttl_seconds: float | None = None,
        webhook: ApprovalWebhook | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.default_ttl_seconds = default_ttl_seconds
        self.webhook = webhook
        self._deliveries: set[asyncio.Task[None]] = set()
        self._closed = False

    # hooks (called inside other components' transactions) ----------------------------------

    async def on_run_finished(
        self,
        conn: AsyncConnection,
        run: RunRow,
        interrupts: Interrupts | None,
    ) -> list[Notice]:
        """Record the run's pending interrupts; supersede the thread's stale pending approvals.

        Called in the executor's finishing transaction; `interrupts` None means the final
        state could not be read, so nothing is changed.
        """
        if interrupts is None or run.get("temporary"):
            return []
        thread_id = _as_uuid(run["thread_id"])
        pending = pending_interrupts(interrupts)
        notices: list[Notice] = []
        for task_id, interrupt_id, value in pending:
            created = await rows.upsert_pending(
                conn,
                approval_id=uuid7(),
                thread_id=thread_id,
                run_id=_as_uuid(run["run_id"]),
                assistant_id=_as_uuid(run["assistant_id"]),
                owner=run["owner"],
                interrupt_id=interrupt_id,
                task_id=task_id,
                value=value,
                expires=expiry_of(value, self.default_ttl_seconds),
            )
            if created is not None:
                notices.append(("approval.created", created))
        await rows.supersede_stale(conn, thread_id, [i for _, i, _ in pending])
        return notices

    async def on_run_created(
        self,
        conn: AsyncConnection,
        *,
        owner: str,
        thread_id: uuid.UUID,
        run_id: uuid.UUID,
        body: RunCreate,
        approval_id: uuid.UUID | None = None,
    ) -> list[Notice]:
        """Close the approvals a new run answers, in the transaction that creates it.

        With `approval_id` (a decision through `/approvals`), that approval must still be
        pending or the run is not created. A plain `command.resume` closes the thread's
        pending approvals it answers as `approved`; one from an older checkpoint (time
        travel) closes nothing here: the thread's pending interrupts are not what it answers.
        """
        command = body.command
        if command is None or command.resume is None:
            return []
        if approval_id is not None:
            answer = command.resume if isinstance(command.resume, dict) else {}
            decided = await rows.decide(
                conn,
                approval_id=approval_id,
                owner=owner,
                thread_id=thread_id,
                status=STATUS_OF.get(str(answer.get("decision")), "approved"),
                decision=answer,
                decided_by=owner,
                resume_run_id=run_id,
            )
            if decided is None:
                raise AlreadyDecided(f"approval {approval_id} is no longer pending")
            return [("approval.decided", decided)]
        if body.checkpoint_id or (body.checkpoint and body.checkpoint.checkpoint_id):
            return []
        thread = await thread_rows.get(conn, owner=owner, thread_id=thread_id)
        interrupts: Interrupts = (thread.get("interrupts") if thread else None) or {}
        current = [i for _, i, _ in pending_interrupts(interrupts)]
        closed = await rows.close_for_resume(
            conn,
            thread_id=thread_id,
            interrupt_ids=resumed_interrupts(command.resume, current),
            resume=command.resume,
            decided_by=owner,
            resume_run_id=run_id,
        )
        return [("approval.decided", approval) for approval in closed]

    async def on_state_updated(
        self, conn: AsyncConnection, thread_id: uuid.UUID, interrupts: Interrupts
    ) -> None:
        """After a state update or a fork: approvals whose interrupt is gone are superseded."""
        pending = [i for _, i, _ in pending_interrupts(interrupts)]
        await rows.supersede_stale(conn, thread_id, pending)

    def notify(self, notices: list[Notice]) -> None:
        """Send webhook events in the background (call after the transaction committed)."""
        if self.webhook is None or not notices:
            return
        if self._closed:
            log.warning("approval webhook dropped at shutdown", extra={"events": len(notices)})
            return
        for event, approval in notices:
            task = asyncio.create_task(self._deliver(self.webhook, event, approval))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(
        self, webhook: ApprovalWebhook, event: str, approval: Mapping[str, object]
    ) -> None:
        try:
            await webhook.deliver(event, approval)
        except Exception as exc:
            log.warning(
                "approval webhook failed",
                extra={
                    "event": event,
                    "approval_id": approval["approval_id"],
                    "target": webhook_target(webhook.url),
                    "error": webhook_error(exc, webhook.url),
                },
            )

    async def aclose(self, grace_seconds: float = 5.0) -> None:
        """Give webhook deliveries in flight a moment, then cancel them."""
        self._closed = True
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=grace_seconds)
        for task in list(self._deliveries):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # the API --------------------------------------------------------------------------------

    async def search(
        self,
        owner: str,
        *,
        status: str | None,
        thread_id: str | None,
        assistant_id: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Approval], int]:
        """A page of the owner's approvals, newest first, and the total count."""
        tid = _maybe_uuid(thread_id)
        aid = _maybe_uuid(assistant_id)
        if (thread_id and tid is None) or (assistant_id and aid is None):
            return [], 0
        async with self.engine.begin() as conn:
            await rows.expire_due(conn, owner=owner)
            return await rows.search(
                conn,
                owner=owner,
                status=status,
                thread_id=tid,
                assistant_id=aid,
                limit=limit,
                offset=offset,
            )

    async def get(self, owner: str, approval_id: str) -> Approval:
        """One approval of the owner's."""
        aid = require_uuid(approval_id, "approval")
        async with self.engine.begin() as conn:
            await rows.expire_due(conn, owner=owner)
            found = await rows.get(conn, owner=owner, approval_id=aid)
        if found is None:
            raise NotFound(f"approval {approval_id[:80]!r} not found")
        return found

    async def decide(
        self,
        runs: RunManager,
        owner: str,
        approval_id: str,
        *,
        decision: Decision,
        value: JsonValue = None,
        comment: str | None = None,
    ) -> DecidedApproval:
        """Decide a pending approval and enqueue the run that resumes its thread with the answer.

        The resume value is `{"decision", "value", "comment"}`. Returns the approval with
        `resume_run_id` set, and the resume run under `run`.
        """
        approval = await self.get(owner, approval_id)
        if approval["status"] != "pending":
            raise closed_error(approval)
        if not await self._interrupt_pending(owner, approval):
            raise await self._close(owner, approval, "superseded")
        answer = {"decision": decision, "value": value, "comment": comment}
        body = RunCreate(
            assistant_id=approval["assistant_id"],
            command=RunCommand(resume=answer),
            metadata={"approval_id": approval["approval_id"]},
        )
        aid = uuid.UUID(approval["approval_id"])
        try:
            run = await runs.create(owner, approval["thread_id"], body, approval_id=aid)
        except AlreadyDecided:
            # Lost the race, or the deadline passed since we looked.
            raise await self._close(owner, approval, "expired") from None
        except NothingToResume:
            # The thread is no longer interrupted: another decision's run already finished,
            # or the thread moved on.
            raise await self._close(owner, approval, "superseded") from None
        decided = await self.get(owner, approval_id)
        log.info(
            "approval decided",
            extra={"approval_id": approval_id, "decision": decision, "run_id": run["run_id"]},
        )
        return {**decided, "run": run}

    async def _interrupt_pending(self, owner: str, approval: Approval) -> bool:
        """Whether the approval's interrupt is still pending in the thread's latest checkpoint."""
        async with self.engine.connect() as conn:
            thread = await thread_rows.get(
                conn, owner=owner, thread_id=uuid.UUID(approval["thread_id"])
            )
        if thread is None:
            return False
        graph_id = (thread.get("metadata") or {}).get("graph_id")
        loaded = self.registry.get(graph_id) if isinstance(graph_id, str) else None
        if loaded is None:
            return True  # cannot tell; creating the run reports the missing graph
        async with loaded.open("threads.read") as graph:
            _, interrupts, _ = await thread_snapshot(graph, approval["thread_id"])
        return approval["interrupt_id"] in {i for _, i, _ in pending_interrupts(interrupts)}

    async def _close(
        self, owner: str, approval: Approval, status: Literal["expired", "superseded"]
    ) -> ApprovalClosed:
        """Close a still-pending approval as `status` (if it is); the error for its final state.

        Only a still-pending approval changes, so an approval someone decided meanwhile
        is reported as decided, never overwritten.
        """
        async with self.engine.begin() as conn:
            if status == "expired":
                await rows.expire_due(conn, owner=owner)
            else:
                await rows.mark(conn, uuid.UUID(approval["approval_id"]), status)
            current = await rows.get(
                conn, owner=owner, approval_id=uuid.UUID(approval["approval_id"])
            )
        if current is None:
            return ApprovalSuperseded(f"approval {approval['approval_id']} no longer exists")
        if current["status"] == "pending":
            # Neither decided nor expired: the thread moved on under us.
            return ApprovalSuperseded(f"approval {approval['approval_id']} was superseded", current)
        return closed_error(current)


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _maybe_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
