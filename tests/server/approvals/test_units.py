"""The approval and store building blocks without a server: expiry, resume maps, webhooks,
and the owner-scoped store over LangGraph's in-memory store."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from langgraph.store.memory import InMemoryStore

from server.approvals.service import (
    ApprovalService,
    ApprovalWebhook,
    expiry_of,
    pending_interrupts,
    resumed_interrupts,
)
from server.core.logging import TextFormatter
from server.db.owner_store import OwnerScopedStore, StoreScopeError, owner_label
from tests.support.approvals import webhook_receiver
from tools.net import FetchFailed, OutboundBlocked, post_json_public


def test_expiry_from_the_interrupt_value_or_the_default() -> None:
    assert expiry_of({"expires_in_seconds": 30}, None) == timedelta(seconds=30)
    assert expiry_of({"expires_in_seconds": 30}, 5) == timedelta(seconds=30)
    assert expiry_of({"expires_at": "2030-01-02T03:04:05Z"}, None) == datetime(
        2030, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    naive = expiry_of({"expires_at": "2030-01-02T03:04:05"}, None)
    assert naive == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert expiry_of({"question": "?"}, 60) == timedelta(seconds=60)
    assert expiry_of("just text", None) is None
    for ignored in (
        {"expires_in_seconds": -1},
        {"expires_in_seconds": True},
        {"expires_at": "soon"},
    ):
        assert expiry_of(ignored, None) is None


def test_which_interrupts_a_resume_answers() -> None:
    interrupts = {"t1": [{"id": "a", "value": 1}], "t2": [{"id": "b", "value": 2}]}
    assert pending_interrupts(interrupts) == [("t1", "a", 1), ("t2", "b", 2)]
    assert resumed_interrupts({"a": "yes"}, ["a", "b"]) == ["a"]
    assert resumed_interrupts({"approved": True}, ["a", "b"]) is None
    assert resumed_interrupts("yes", ["a"]) is None
    assert resumed_interrupts({}, ["a"]) is None


async def test_post_json_public_refuses_loopback_unless_allowed() -> None:
    with webhook_receiver() as (url, received):
        with pytest.raises(OutboundBlocked):
            await post_json_public(url, b"{}", timeout=5)
        status = await post_json_public(
            url, b'{"event": "x"}', timeout=5, allow_private=True, headers={"X-Test": "1"}
        )
        assert status == 204
        assert received[0]["event"] == "x"
        assert received[0]["_headers"]["Content-Type"] == "application/json"
        assert received[0]["_headers"]["X-Test"] == "1"
    with pytest.raises(FetchFailed):
        await post_json_public(url, b"{}", timeout=2, allow_private=True)


async def test_webhook_retries_until_delivered() -> None:
    with webhook_receiver(fail_first=2) as (url, received):
        hook = ApprovalWebhook(url=url, timeout=5, attempts=3, allow_private=True)
        await hook.deliver("approval.created", {"approval_id": "a1"})
        assert received[0]["event"] == "approval.created"
        assert received[0]["approval"] == {"approval_id": "a1"}
        assert received[0]["_headers"]["X-Trellis-Event"] == "approval.created"
    with webhook_receiver(fail_first=5) as (url, received):
        hook = ApprovalWebhook(url=url, timeout=5, attempts=2, allow_private=True)
        with pytest.raises(FetchFailed):
            await hook.deliver("approval.created", {"approval_id": "a1"})
        assert received == []


async def test_blocked_webhooks_are_not_retried_and_never_raise_from_notify() -> None:
    hook = ApprovalWebhook(url="http://127.0.0.1:9/hook", timeout=1, attempts=5)
    with pytest.raises(OutboundBlocked):
        await hook.deliver("approval.created", {"approval_id": "a1"})
    service = ApprovalService(engine=None, registry=None, webhook=hook)  # type: ignore[arg-type]
    service.notify([("approval.created", {"approval_id": "a1"})])
    await asyncio.sleep(0.05)
    await service.aclose()
    service.notify([("approval.created", {"approval_id": "a2"})])  # after close: dropped


async def test_a_failed_approval_webhook_is_logged_by_scheme_and_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "http://ops:pa55word@127.0.0.1:9/approvals/s3cret?token=s3cret"
    hook = ApprovalWebhook(url=url, timeout=1, attempts=1)  # loopback: blocked, not retried
    service = ApprovalService(engine=None, registry=None, webhook=hook)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="trellis.approvals"):
        service.notify([("approval.created", {"approval_id": "a1"})])
        await service.aclose()
    [failed] = [r for r in caplog.records if r.getMessage() == "approval webhook failed"]
    line = TextFormatter().format(failed)
    assert "target=http://127.0.0.1:9" in line
    assert "error=" in line
    assert "s3cret" not in line
    assert "pa55word" not in line


async def test_owner_scoped_store_isolates_owners() -> None:
    inner = InMemoryStore()
    alice, bob = OwnerScopedStore(inner, "alice@example.com"), OwnerScopedStore(inner, "bob")
    await alice.aput(("prefs", "ui"), "theme", {"color": "green"})
    await bob.aput(("prefs", "ui"), "theme", {"color": "red"})

    mine = await alice.aget(("prefs", "ui"), "theme")
    assert mine is not None
    assert mine.namespace == ("prefs", "ui")
    assert mine.value == {"color": "green"}
    assert [i.value for i in await bob.asearch(("prefs",))] == [{"color": "red"}]
    assert [i.namespace for i in await alice.asearch(())] == [("prefs", "ui")]
    assert await alice.alist_namespaces() == [("prefs", "ui")]
    assert await alice.alist_namespaces(max_depth=1) == [("prefs",)]
    assert await alice.alist_namespaces(suffix=("ui",)) == [("prefs", "ui")]
    raw = await inner.alist_namespaces()
    assert sorted(raw) == [
        ("trellis-owner", "alice@example%2Ecom", "prefs", "ui"),
        ("trellis-owner", "bob", "prefs", "ui"),
    ]
    await alice.adelete(("prefs", "ui"), "theme")
    assert await alice.aget(("prefs", "ui"), "theme") is None
    assert await bob.aget(("prefs", "ui"), "theme") is not None


def test_owner_labels_are_injective_and_dot_free() -> None:
    assert owner_label("a.b") != owner_label("a%2Eb")
    assert "." not in owner_label("x.y.z")


async def test_unbound_store_needs_a_run() -> None:
    with pytest.raises(StoreScopeError):
        await OwnerScopedStore(InMemoryStore()).aget(("a",), "k")
