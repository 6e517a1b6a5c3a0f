"""Approvals through HTTP: every interrupt becomes one, and deciding it resumes the thread."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from tests.support.approvals import approvals_of, decide, pending_approval, wait_status


async def _interrupted(client: LangGraphClient, graph: str = "approval", **state: Any) -> str:
    """A new thread whose first run stopped at an interrupt."""
    thread_id = (await client.threads.create())["thread_id"]
    result = await client.runs.wait(thread_id, graph, input=state or {"topic": "cats"})
    assert "__interrupt__" in result, result
    return str(thread_id)


async def test_an_interrupt_becomes_a_pending_approval(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(client)
    thread = await client.threads.get(thread_id)
    [(task_id, [interrupt])] = thread["interrupts"].items()
    [run] = await client.runs.list(thread_id)

    response = await http.get("/approvals", params={"thread_id": thread_id})
    assert response.status_code == 200
    assert response.headers["X-Pagination-Total"] == "1"
    assert "X-Pagination-Next" not in response.headers
    [approval] = response.json()
    assert approval["status"] == "pending"
    assert approval["thread_id"] == thread_id
    assert approval["run_id"] == run["run_id"]
    assert approval["assistant_id"] == run["assistant_id"]
    assert approval["interrupt_id"] == interrupt["id"]
    assert approval["task_id"] == task_id
    assert approval["value"] == {"question": "Approve this draft?", "draft": "Draft about cats"}
    assert approval["decision"] is None
    assert approval["decided_by"] is None
    assert approval["resume_run_id"] is None
    assert approval["expires_at"] is None
    assert "owner" not in approval

    again = await http.get(f"/approvals/{approval['approval_id']}")
    assert again.json() == approval
    assert (await http.get(f"/approvals/{uuid.uuid4()}")).status_code == 404
    assert (await http.get("/approvals/not-a-uuid")).status_code == 404


async def test_listing_filters_and_pages_newest_first(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    first = await _interrupted(client, topic="one")
    second = await _interrupted(client, topic="two")
    assistant_id = (await client.assistants.get("approval"))["assistant_id"]
    page = await http.get(
        "/approvals", params={"status": "pending", "assistant_id": assistant_id, "limit": 1}
    )
    assert page.status_code == 200
    [newest] = page.json()
    assert newest["thread_id"] == second
    total = int(page.headers["X-Pagination-Total"])
    assert total >= 2
    assert page.headers["X-Pagination-Next"] == "1"
    rest = await http.get(
        "/approvals",
        params={"status": "pending", "assistant_id": assistant_id, "limit": 1, "offset": 1},
    )
    assert rest.json()[0]["thread_id"] == first
    assert (
        await http.get("/approvals", params={"status": "approved", "thread_id": first})
    ).json() == []
    assert (await http.get("/approvals", params={"status": "bogus"})).status_code == 422
    gate_id = (await client.assistants.get("gate"))["assistant_id"]
    by_gate = await http.get("/approvals", params={"assistant_id": gate_id, "thread_id": first})
    assert by_gate.json() == []


@pytest.mark.parametrize(
    ("decision", "extra", "status", "expect"),
    [
        ("approve", {"comment": "ship it"}, "approved", {"approved": True, "feedback": "ship it"}),
        ("reject", {"comment": "no"}, "rejected", {"approved": False, "feedback": "no"}),
        (
            "edit",
            {"value": "A better draft"},
            "edited",
            {"approved": True, "draft": "A better draft"},
        ),
    ],
)
async def test_deciding_resumes_the_thread_with_the_answer(
    client: LangGraphClient,
    http: httpx.AsyncClient,
    decision: str,
    extra: dict[str, Any],
    status: str,
    expect: dict[str, Any],
) -> None:
    thread_id = await _interrupted(client)
    approval = await pending_approval(http, thread_id)

    response = await decide(http, approval["approval_id"], decision, **extra)
    assert response.status_code == 200, response.text
    decided = response.json()
    assert decided["status"] == status
    assert decided["decision"] == {
        "decision": decision,
        "value": extra.get("value"),
        "comment": extra.get("comment"),
    }
    assert decided["decided_by"] == "anonymous"
    assert decided["decided_at"] is not None
    run = decided["run"]
    assert decided["resume_run_id"] == run["run_id"]
    assert run["thread_id"] == thread_id
    assert run["metadata"]["approval_id"] == approval["approval_id"]
    assert run["kwargs"]["command"]["resume"] == decided["decision"]

    final = await client.runs.join(thread_id, run["run_id"])
    assert final["log"] == ["draft", "review", "publish"]
    for key, value in expect.items():
        assert final[key] == value
    assert (await client.threads.get(thread_id))["status"] == "idle"
    stored = (await http.get(f"/approvals/{approval['approval_id']}")).json()
    assert stored == {k: v for k, v in decided.items() if k != "run"}

    again = await decide(http, approval["approval_id"], "approve")
    assert again.status_code == 409
    assert again.json()["code"] == "already_decided"
    assert again.json()["approval"]["decision"] == decided["decision"]


async def test_ten_concurrent_decisions_make_one_resume_run(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(client)
    approval = await pending_approval(http, thread_id)
    decisions = ["approve", "reject", "edit"] * 3 + ["approve"]

    responses = await asyncio.gather(
        *(
            decide(http, approval["approval_id"], d, comment=f"decider {i}", value=f"draft {i}")
            for i, d in enumerate(decisions)
        )
    )

    winners = [r for r in responses if r.status_code == 200]
    losers = [r for r in responses if r.status_code != 200]
    assert len(winners) == 1, [r.text for r in responses]
    assert len(losers) == 9
    winner = winners[0].json()
    for loser in losers:
        assert loser.status_code == 409, loser.text
        body = loser.json()
        assert body["code"] == "already_decided", body
        assert body["approval"]["decision"] == winner["decision"]
        assert body["approval"]["resume_run_id"] == winner["resume_run_id"]
    await client.runs.join(thread_id, winner["resume_run_id"])
    runs = await client.runs.list(thread_id, limit=50)
    resumes = [r for r in runs if r["kwargs"].get("command")]
    assert [r["run_id"] for r in resumes] == [winner["resume_run_id"]]
    assert len(runs) == 2
    [stored] = await approvals_of(http, thread_id)
    assert stored["decision"] == winner["decision"]
    state = await client.threads.get_state(thread_id)
    assert state["values"]["feedback"] == winner["decision"]["comment"]


async def test_a_newer_run_supersedes_the_approval(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(client, topic="first")
    old = await pending_approval(http, thread_id)
    # New input instead of an answer: the thread starts over and stops at a new interrupt.
    await client.runs.wait(thread_id, "approval", input={"topic": "second"})

    stale = (await http.get(f"/approvals/{old['approval_id']}")).json()
    assert stale["status"] == "superseded"
    fresh = await pending_approval(http, thread_id)
    assert fresh["interrupt_id"] != old["interrupt_id"]
    assert fresh["value"]["draft"] == "Draft about second"

    refused = await decide(http, old["approval_id"], "approve")
    assert refused.status_code == 409
    assert refused.json()["code"] == "superseded"
    assert refused.json()["approval"]["status"] == "superseded"
    assert len(await client.runs.list(thread_id)) == 2


async def test_a_fork_supersedes_the_approval(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(client)
    approval = await pending_approval(http, thread_id)
    history = await client.threads.get_history(thread_id, limit=50)
    at_draft = next(h for h in history if h["next"] == ["draft"])
    await client.threads.update_state(
        thread_id, None, as_node="__copy__", checkpoint_id=at_draft["checkpoint_id"]
    )

    refused = await decide(http, approval["approval_id"], "approve")
    assert refused.status_code == 409
    assert refused.json()["code"] == "superseded"
    assert len(await client.runs.list(thread_id)) == 1
    # The fork runs on and meets a new interrupt: a new approval, decidable as usual.
    await client.runs.wait(thread_id, "approval", input=None)
    fresh = await pending_approval(http, thread_id)
    assert fresh["approval_id"] != approval["approval_id"]
    assert (await decide(http, fresh["approval_id"], "approve")).status_code == 200


async def test_superseded_is_detected_even_without_a_hook(
    client: LangGraphClient, http: httpx.AsyncClient, settings: Settings
) -> None:
    """If the thread moved on behind Trellis' back, deciding notices and says so."""
    thread_id = await _interrupted(client)
    approval = await pending_approval(http, thread_id)
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE approvals SET interrupt_id = 'gone' WHERE approval_id = %s",
            (approval["approval_id"],),
        )
    refused = await decide(http, approval["approval_id"], "approve")
    assert refused.status_code == 409
    assert refused.json()["code"] == "superseded"
    assert (await http.get(f"/approvals/{approval['approval_id']}")).json()["status"] == (
        "superseded"
    )


async def test_an_expired_approval_cannot_be_decided(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(
        client, "gate", request={"question": "Quick?", "expires_in_seconds": 0.5}
    )
    approval = await pending_approval(http, thread_id)
    assert approval["expires_at"] is not None
    await asyncio.sleep(0.7)

    refused = await decide(http, approval["approval_id"], "approve")
    assert refused.status_code == 409
    assert refused.json()["code"] == "expired"
    assert refused.json()["approval"]["status"] == "expired"
    assert (await approvals_of(http, thread_id, status="expired"))[0]["approval_id"] == (
        approval["approval_id"]
    )
    # The thread itself still waits; a plain resume can still answer it.
    assert (await client.threads.get(thread_id))["status"] == "interrupted"


async def test_expiry_from_an_absolute_deadline(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    deadline = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    thread_id = await _interrupted(
        client, "gate", request={"expires_at": deadline.isoformat().replace("+00:00", "Z")}
    )
    approval = await pending_approval(http, thread_id)
    assert datetime.fromisoformat(approval["expires_at"]) == deadline
    assert (await decide(http, approval["approval_id"], "approve")).status_code == 200


async def test_a_plain_resume_closes_the_approval(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(client)
    approval = await pending_approval(http, thread_id)
    run = await client.runs.create(
        thread_id, "approval", command={"resume": {"approved": True, "feedback": "plain"}}
    )

    closed = (await http.get(f"/approvals/{approval['approval_id']}")).json()
    assert closed["status"] == "approved"
    assert closed["decision"] == {
        "decision": "resume",
        "value": {"approved": True, "feedback": "plain"},
        "comment": None,
    }
    assert closed["resume_run_id"] == run["run_id"]
    assert closed["decided_by"] == "anonymous"
    final = await client.runs.join(thread_id, run["run_id"])
    assert final["approved"] is True
    refused = await decide(http, approval["approval_id"], "reject")
    assert refused.status_code == 409
    assert refused.json()["code"] == "already_decided"
    assert await approvals_of(http, thread_id, status="pending") == []


async def test_each_interrupt_of_a_node_is_its_own_approval(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(client, "gate", request={"question": "Sure?"}, asks=2)
    first = await pending_approval(http, thread_id)
    assert first["value"] == {"question": "Sure?", "round": 0}
    decided = (await decide(http, first["approval_id"], "approve", comment="1")).json()
    await client.runs.join(thread_id, decided["resume_run_id"])

    second = await pending_approval(http, thread_id)
    assert second["value"] == {"question": "Sure?", "round": 1}
    assert second["interrupt_id"] != first["interrupt_id"]
    assert second["run_id"] == decided["resume_run_id"]
    assert (await http.get(f"/approvals/{first['approval_id']}")).json()["status"] == "approved"
    last = (await decide(http, second["approval_id"], "reject", comment="2")).json()
    final = await client.runs.join(thread_id, last["resume_run_id"])
    assert [a["decision"] for a in final["answers"]] == ["approve", "reject"]
    assert final["log"] == ["ask", "done"]


async def test_an_interrupt_inside_a_subgraph(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(client, "studio", n=2)
    approval = await pending_approval(http, thread_id)
    assert approval["value"] == {"question": "Confirm n=2?"}
    decided = (await decide(http, approval["approval_id"], "approve")).json()
    final = await client.runs.join(thread_id, decided["resume_run_id"])
    assert final["path"] == ["plan", "finish"]
    assert "approve" in final["verdict"]


async def test_approvals_are_owner_scoped(
    client: LangGraphClient, http: httpx.AsyncClient, settings: Settings
) -> None:
    thread_id = await _interrupted(client)
    approval = await pending_approval(http, thread_id)
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE approvals SET owner = 'someone-else' WHERE approval_id = %s",
            (approval["approval_id"],),
        )
    assert (await http.get(f"/approvals/{approval['approval_id']}")).status_code == 404
    assert await approvals_of(http, thread_id) == []
    assert (await decide(http, approval["approval_id"], "approve")).status_code == 404


async def test_decision_bodies_are_validated(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await _interrupted(client)
    approval = await pending_approval(http, thread_id)
    url = f"/approvals/{approval['approval_id']}/decision"
    assert (await http.post(url, json={"decision": "maybe"})).status_code == 422
    assert (await http.post(url, json={})).status_code == 422
    assert (
        await http.post(url, json={"decision": "approve", "comment": "x" * 20_000})
    ).status_code == 422
    assert (await wait_status(http, approval["approval_id"], "pending"))["decision"] is None
