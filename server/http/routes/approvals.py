"""Approvals: the interrupts runs are waiting on, as objects a human lists and decides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field

from server.approvals.service import ApprovalService, Decision
from server.core.errors import Unavailable
from server.core.schemas import MAX_PAGE, Body
from server.core.types import Approval, ApprovalStatus, JsonValue
from server.http.deps import OwnerDep, RunsDep, ServicesDep
from server.http.routes import AS_RETURNED, CheckedRoute

router = APIRouter(prefix="/approvals", tags=["approvals"], route_class=CheckedRoute)


async def get_approvals(services: ServicesDep) -> ApprovalService:
    """The approval service opened by the lifespan."""
    if services.approvals is None:
        raise Unavailable("approvals are not enabled in this process")
    return services.approvals


ApprovalsDep = Annotated[ApprovalService, Depends(get_approvals)]


class DecisionBody(Body):
    """A human's answer; the thread resumes with `{"decision", "value", "comment"}`."""

    decision: Decision
    value: object = None
    """For `edit`: the edited value the graph should use; otherwise anything the graph reads."""
    comment: str | None = Field(default=None, max_length=10_000)


@router.get("", response_model=AS_RETURNED)
async def list_approvals(
    approvals: ApprovalsDep,
    owner: OwnerDep,
    response: Response,
    status: ApprovalStatus | None = None,
    thread_id: str | None = Query(default=None, max_length=64),
    assistant_id: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=10, ge=1, le=MAX_PAGE),
    offset: int = Query(default=0, ge=0, le=10_000_000),
) -> Sequence[Approval]:
    """The caller's approvals, newest first; `X-Pagination-Total` counts all that match."""
    page, total = await approvals.search(
        owner,
        status=status,
        thread_id=thread_id,
        assistant_id=assistant_id,
        limit=limit,
        offset=offset,
    )
    response.headers["X-Pagination-Total"] = str(total)
    if offset + len(page) < total:
        response.headers["X-Pagination-Next"] = str(offset + len(page))
    return page


@router.get("/{approval_id}", response_model=AS_RETURNED)
async def get_approval(approval_id: str, approvals: ApprovalsDep, owner: OwnerDep) -> Approval:
    """One approval."""
    return await approvals.get(owner, approval_id)


@router.post("/{approval_id}/decision", response_model=AS_RETURNED)
async def decide(
    approval_id: str, body: DecisionBody, approvals: ApprovalsDep, runs: RunsDep, owner: OwnerDep
) -> Approval:
    """Decide a pending approval; its thread resumes in a new run (`resume_run_id`, `run`).

    409 when it is no longer pending (`already_decided`, `superseded`, `expired`), with
    the approval as it stands under `approval`.
    """
    return await approvals.decide(
        runs,
        owner,
        approval_id,
        decision=body.decision,
        value=cast(JsonValue, body.value),
        comment=body.comment,
    )
