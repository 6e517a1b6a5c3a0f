"""Approvals outlive the process, and webhooks announce them (real `trellis serve` processes)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.approvals import webhook_receiver
from tests.support.servers import scratch_database, server_process


def _events(received: list[dict[str, Any]], event: str, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in received if r["event"] == event]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {event} webhook; got {received}")


def test_a_pending_approval_survives_a_killed_server() -> None:
    with scratch_database() as database_url, webhook_receiver() as (hook_url, received):
        env = {
            "APPROVAL_WEBHOOK_URL": hook_url,
            "APPROVAL_WEBHOOK_ALLOW_PRIVATE": "true",
            "RATE_LIMIT_ENABLED": "false",
        }
        with server_process(database_url=database_url, env=env) as (url, proc):
            thread_id = httpx.post(f"{url}/threads", json={}).json()["thread_id"]
            result = httpx.post(
                f"{url}/threads/{thread_id}/runs/wait",
                json={"assistant_id": "approval", "input": {"topic": "crash"}},
                timeout=30,
            ).json()
            assert "__interrupt__" in result
            [created] = _events(received, "approval.created")
            approval_id = created["approval"]["approval_id"]
            assert created["approval"]["thread_id"] == thread_id
            assert created["approval"]["status"] == "pending"
            proc.kill()
            proc.wait(10)

        with server_process(database_url=database_url, env=env) as (url, _):
            approval = httpx.get(f"{url}/approvals/{approval_id}").json()
            assert approval["status"] == "pending"
            decided = httpx.post(
                f"{url}/approvals/{approval_id}/decision",
                json={"decision": "approve", "comment": "after the crash"},
                timeout=30,
            )
            assert decided.status_code == 200, decided.text
            run_id = decided.json()["resume_run_id"]
            final = httpx.get(f"{url}/threads/{thread_id}/runs/{run_id}/join", timeout=30).json()
            assert final["approved"] is True
            assert final["feedback"] == "after the crash"
            assert final["log"] == ["draft", "review", "publish"]
            assert httpx.get(f"{url}/threads/{thread_id}").json()["status"] == "idle"
            [announced] = _events(received, "approval.decided")
            assert announced["approval"]["approval_id"] == approval_id
            assert announced["approval"]["status"] == "approved"
            assert announced["approval"]["resume_run_id"] == run_id
