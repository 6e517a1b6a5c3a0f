"""Approval deadlines, which interrupts are pending or answered, and the closed-approval errors.

Complements tests/approvals/test_units.py (the basic cases there are not repeated here).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest

from server.approvals.service import (
    closed_error,
    expiry_of,
    pending_interrupts,
    resumed_interrupts,
)
from server.core.errors import (
    AlreadyDecided,
    ApprovalClosed,
    ApprovalExpired,
    ApprovalSuperseded,
    Conflict,
)
from server.core.types import Approval, Interrupts, JsonValue


def test_a_lifetime_in_seconds_wins_over_a_deadline() -> None:
    both: JsonValue = {"expires_in_seconds": 1.5, "expires_at": "2030-01-01T00:00:00Z"}
    assert expiry_of(both, 60) == timedelta(seconds=1.5)


def test_a_deadline_keeps_its_offset() -> None:
    deadline = expiry_of({"expires_at": "2030-01-01T02:00:00+02:00"}, None)
    assert deadline == datetime(2030, 1, 1, tzinfo=UTC)
    assert isinstance(deadline, datetime)
    assert deadline.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)


@pytest.mark.parametrize(
    "value",
    [
        {"expires_in_seconds": 0},
        {"expires_in_seconds": "30"},
        {"expires_at": 1893456000},
        {"expires_at": ""},
        [{"expires_in_seconds": 30}],
        42,
        None,
    ],
)
def test_anything_else_falls_back_to_the_default_lifetime(value: JsonValue) -> None:
    assert expiry_of(value, 90) == timedelta(seconds=90)


def test_no_default_lifetime_means_no_deadline() -> None:
    assert expiry_of({"question": "?"}, 0) is None
    assert expiry_of({"question": "?"}, None) is None


def test_pending_interrupts_skip_those_without_an_id() -> None:
    interrupts = cast(
        Interrupts,
        {
            "t1": [{"id": "a", "value": {"q": 1}}, {"value": "no id"}, {"id": "", "value": 0}],
            "t2": [{"id": "b"}],
            "t3": [],
        },
    )
    assert pending_interrupts(interrupts) == [("t1", "a", {"q": 1}), ("t2", "b", None)]


def test_a_resume_map_narrows_only_when_it_names_pending_interrupts() -> None:
    assert resumed_interrupts({"b": 1, "a": 2}, ["a", "b", "c"]) == ["b", "a"]
    assert resumed_interrupts({"a": 1, "z": 2}, ["a", "b"]) is None  # names an unknown id
    assert resumed_interrupts({"a": 1}, []) is None  # nothing pending to narrow to
    assert resumed_interrupts(["a"], ["a"]) is None


def approval(status: str) -> Approval:
    return cast(Approval, {"approval_id": "ap-1", "status": status, "decision": None})


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        ("approved", AlreadyDecided, "already_decided"),
        ("rejected", AlreadyDecided, "already_decided"),
        ("edited", AlreadyDecided, "already_decided"),
        ("expired", ApprovalExpired, "expired"),
        ("superseded", ApprovalSuperseded, "superseded"),
    ],
)
def test_a_closed_approval_is_a_409_carrying_the_approval(
    status: str, kind: type[ApprovalClosed], code: str
) -> None:
    error = closed_error(approval(status))
    assert type(error) is kind
    assert isinstance(error, Conflict)
    assert error.status == 409
    assert error.body() == {
        "detail": f"approval ap-1 is {status}",
        "code": code,
        "approval": approval(status),
    }


def test_a_closed_error_without_the_approval_has_the_plain_body() -> None:
    assert ApprovalSuperseded("gone").body() == {"detail": "gone", "code": "superseded"}
    assert ApprovalClosed("closed").code == "approval_closed"
