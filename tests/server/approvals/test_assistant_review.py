"""The built-in assistant's low-confidence human review, decided through `/approvals`.

Served from the project's `langgraph.json` with the offline provider; the per-run context
forces a review (threshold 1.0, no revisions, `human_review` on).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from langgraph_sdk import get_client

from server.http.app import create_app
from tests.support.servers import builtin_settings, create_database, drop_database

REVIEW_CONTEXT = {"confidence_threshold": 1.0, "max_revisions": 0, "human_review": True}
QUESTION = {"messages": [{"role": "user", "content": "How does Trellis survive a crash?"}]}


@pytest.fixture(scope="module")
async def assistant_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    database = create_database()
    settings = builtin_settings(
        database, tmp_path_factory.mktemp("trellis-data"), rate_limit_enabled=False
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            log_config=None,
            access_log=False,
            lifespan="on",
            proxy_headers=False,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task
    sock.close()
    drop_database(database)


async def _review(http: httpx.AsyncClient, url: str) -> tuple[str, dict[str, Any]]:
    client = get_client(url=url, api_key=None)
    try:
        thread_id = (await client.threads.create())["thread_id"]
        result = await client.runs.wait(
            thread_id, "assistant", input=QUESTION, context=REVIEW_CONTEXT
        )
    finally:
        await client.http.client.aclose()
    assert "__interrupt__" in result, result
    [approval] = (await http.get("/approvals", params={"thread_id": thread_id})).json()
    return thread_id, approval


@pytest.mark.parametrize(
    ("decision", "extra", "status"),
    [
        ("approve", {}, "approved"),
        ("edit", {"value": "A human-written answer."}, "edited"),
        ("reject", {"comment": "not grounded"}, "rejected"),
    ],
)
async def test_low_confidence_review_is_an_approval(
    assistant_url: str, decision: str, extra: dict[str, Any], status: str
) -> None:
    async with httpx.AsyncClient(base_url=assistant_url, timeout=120) as http:
        thread_id, approval = await _review(http, assistant_url)
        assert approval["status"] == "pending"
        assert approval["value"]["type"] == "review"
        assert 0.0 <= approval["value"]["confidence"] < 1.0
        assert approval["value"]["draft"]

        response = await http.post(
            f"/approvals/{approval['approval_id']}/decision", json={"decision": decision, **extra}
        )
        assert response.status_code == 200, response.text
        decided = response.json()
        assert decided["status"] == status
        final = (
            await http.get(f"/threads/{thread_id}/runs/{decided['resume_run_id']}/join")
        ).json()
        assert final["verdict"] == status
        assert final["review"]["decision"] == decision
        if decision == "approve":
            assert final["answer"] == approval["value"]["draft"]
        elif decision == "edit":
            assert final["answer"] == "A human-written answer."
        else:
            assert "not grounded" in final["answer"]
        thread = (await http.get(f"/threads/{thread_id}")).json()
        assert thread["status"] == "idle"
