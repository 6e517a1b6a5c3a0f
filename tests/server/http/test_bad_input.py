"""Bad requests: one test per error class. Each answers a JSON `{"detail", "code"}` with the right
status, never a 500 or a traceback, and leaves the thread's state exactly as it was."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.support.api import assert_error, parse_sse, snapshot


@pytest.fixture
async def http(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def thread(client: LangGraphClient) -> AsyncIterator[str]:
    """A thread stopped at the `approval` interrupt; the test asserts it is untouched after."""
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input={"topic": "cats"})
    before = await snapshot(client, tid)
    assert before[2] == "interrupted"
    yield tid
    assert await snapshot(client, tid) == before, "a refused request changed the thread"
    assert len(await client.runs.list(tid)) == 1, "a refused request created a run"


async def test_unknown_assistant_is_404(http: httpx.AsyncClient, thread: str) -> None:
    for assistant_id in ("no-such-graph", str(uuid.uuid4())):
        for path in (f"/threads/{thread}/runs", f"/threads/{thread}/runs/wait", "/runs/wait"):
            response = await http.post(path, json={"assistant_id": assistant_id, "input": {}})
            assert_error(response, 404, "not_found")
        response = await http.post(
            f"/threads/{thread}/runs/stream", json={"assistant_id": assistant_id, "input": {}}
        )
        assert_error(response, 404, "not_found")
        assert_error(await http.get(f"/assistants/{assistant_id}"), 404, "not_found")
        assert_error(await http.get(f"/assistants/{assistant_id}/graph"), 404, "not_found")
    assert_error(await http.post("/assistants", json={"graph_id": "nope"}), 404, "not_found")


async def test_unknown_thread_is_404(http: httpx.AsyncClient, thread: str) -> None:
    missing = str(uuid.uuid4())
    requests: list[tuple[str, str, Any]] = [
        ("GET", f"/threads/{missing}", None),
        ("PATCH", f"/threads/{missing}", {"metadata": {"a": 1}}),
        ("DELETE", f"/threads/{missing}", None),
        ("GET", f"/threads/{missing}/state", None),
        ("POST", f"/threads/{missing}/state", {"values": {"topic": "x"}}),
        ("GET", f"/threads/{missing}/history", None),
        ("POST", f"/threads/{missing}/history", {}),
        ("POST", f"/threads/{missing}/copy", None),
        ("GET", f"/threads/{missing}/runs", None),
        ("POST", f"/threads/{missing}/runs", {"assistant_id": "echo"}),
        ("POST", f"/threads/{missing}/runs/wait", {"assistant_id": "echo"}),
        ("POST", f"/threads/{missing}/runs/stream", {"assistant_id": "echo"}),
        ("GET", f"/threads/{thread}/runs/{missing}", None),
        ("GET", f"/threads/{thread}/runs/{missing}/join", None),
        ("GET", f"/threads/{thread}/runs/{missing}/stream", None),
        ("POST", f"/threads/{thread}/runs/{missing}/cancel", None),
        ("DELETE", f"/threads/{thread}/runs/{missing}", None),
        ("GET", f"/threads/{thread}/state/{missing}", None),
    ]
    for method, path, body in requests:
        response = (
            await http.request(method, path, json=body)
            if body is not None
            else (await http.request(method, path))
        )
        assert_error(response, 404, "not_found")


async def test_malformed_uuids_are_404_or_422(http: httpx.AsyncClient, thread: str) -> None:
    for bad in ("not-a-uuid", "1234", "%20", "0" * 200, "g" * 32):
        for method, path in (
            ("GET", f"/threads/{bad}"),
            ("GET", f"/threads/{bad}/state"),
            ("GET", f"/threads/{bad}/history"),
            ("GET", f"/threads/{bad}/runs"),
            ("DELETE", f"/threads/{bad}"),
            ("GET", f"/threads/{thread}/runs/{bad}"),
            ("POST", f"/threads/{thread}/runs/{bad}/cancel"),
            ("GET", f"/threads/{thread}/runs/{bad}/join"),
            ("GET", f"/threads/{thread}/state/{bad}"),
            ("GET", f"/assistants/{bad}"),
            ("DELETE", f"/assistants/{bad}"),
        ):
            assert_error(await http.request(method, path), (404, 422))
    assert_error(await http.post("/threads", json={"thread_id": "nope"}), 422)
    assert_error(
        await http.post("/assistants", json={"graph_id": "echo", "assistant_id": "nope"}), 422
    )
    # A malformed id in a search filter simply matches nothing.
    response = await http.post("/threads/search", json={"ids": ["nope"]})
    assert response.status_code == 200
    assert response.json() == []


async def test_busy_thread_with_reject_is_409(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0.1})
    for path in (
        f"/threads/{tid}/runs",
        f"/threads/{tid}/runs/wait",
        f"/threads/{tid}/runs/stream",
    ):
        response = await http.post(
            path,
            json={"assistant_id": "slow", "input": {"tags": ["X"]}, "multitask_strategy": "reject"},
        )
        assert_error(response, 409, "thread_busy")
    final = await client.runs.join(tid, run["run_id"])
    # Only the first run ran: its input, its steps, once.
    assert final["log"] == ["s1", "s2", "s3", "s4"]
    assert "tags" not in final or final["tags"] == []
    assert [r["run_id"] for r in await client.runs.list(tid)] == [run["run_id"]]


async def test_empty_command_is_422(http: httpx.AsyncClient, thread: str) -> None:
    for command in ({}, {"resume": None}, {"update": None, "goto": None}):
        response = await http.post(
            f"/threads/{thread}/runs", json={"assistant_id": "approval", "command": command}
        )
        assert_error(response, 422)


async def test_resume_with_nothing_to_resume(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "echo", input={"text": "done"})
    before = await snapshot(client, tid)
    for path in (
        f"/threads/{tid}/runs",
        f"/threads/{tid}/runs/wait",
        f"/threads/{tid}/runs/stream",
    ):
        response = await http.post(
            path, json={"assistant_id": "echo", "command": {"resume": "anything"}}
        )
        body = assert_error(response, (400, 409, 422), "nothing_to_resume")
        assert isinstance(body["detail"], str)
    # A brand-new thread has nothing to resume either.
    fresh = (await client.threads.create())["thread_id"]
    response = await http.post(
        f"/threads/{fresh}/runs/wait", json={"assistant_id": "echo", "command": {"resume": 1}}
    )
    assert_error(response, (400, 409, 422), "nothing_to_resume")
    assert await snapshot(client, tid) == before
    assert len(await client.runs.list(tid)) == 1


async def test_input_and_command_together_is_422(http: httpx.AsyncClient, thread: str) -> None:
    response = await http.post(
        f"/threads/{thread}/runs/wait",
        json={"assistant_id": "approval", "input": {"topic": "x"}, "command": {"resume": 1}},
    )
    assert_error(response, 422, "validation_error")


async def test_invalid_stream_mode_is_422(http: httpx.AsyncClient, thread: str) -> None:
    for mode in ("bogus", ["values", "bogus"], 5, {"values": True}, "VALUES"):
        response = await http.post(
            f"/threads/{thread}/runs/stream", json={"assistant_id": "approval", "stream_mode": mode}
        )
        assert_error(response, 422, "validation_error")


async def test_body_that_is_not_json_is_422(http: httpx.AsyncClient, thread: str) -> None:
    for raw in (b"{not json", b"", b"[1,2", b"\xff\xfe", b"null", b"[]", b'"string"'):
        for path in ("/threads", f"/threads/{thread}/runs", "/assistants/search"):
            response = await http.post(
                path, content=raw, headers={"content-type": "application/json"}
            )
            assert_error(response, 422)


async def test_json_sent_as_text_plain_is_accepted(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    """LangGraph Studio posts JSON as text/plain to avoid CORS preflights."""
    response = await http.post(
        "/threads",
        content=b'{"metadata": {"via": "text/plain"}}',
        headers={"content-type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    tid = response.json()["thread_id"]
    assert response.json()["metadata"] == {"via": "text/plain"}

    response = await http.post(
        f"/threads/{tid}/runs",
        content=b'{"assistant_id": "echo", "input": {"text": "plain"}}',
        headers={"content-type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert (await client.runs.join(tid, run["run_id"]))["text"] == "plain!"

    response = await http.post(
        f"/threads/{tid}/runs/wait",
        content=b'{"assistant_id": "echo", "input": {"text": "again"}}',
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "again!"


async def test_json_body_is_read_whatever_its_content_type(http: httpx.AsyncClient) -> None:
    """Like the official server: `curl -d '{}'` (a form label) and no label at all both work."""
    for headers in (
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/octet-stream"},
        {},
    ):
        response = await http.post(
            "/threads", content=b'{"metadata": {"via": "any"}}', headers=headers
        )
        assert response.status_code == 200, (headers, response.text)
        assert response.json()["metadata"] == {"via": "any"}
        response = await http.post("/threads/search", content=b"{}", headers=headers)
        assert response.status_code == 200, (headers, response.text)
        # A body that is not JSON is still refused clearly, whatever it was labelled.
        response = await http.post("/threads", content=b"metadata=x", headers=headers)
        body = assert_error(response, 422, "validation_error")
        assert body["detail"][0]["type"] == "json_invalid", body


async def test_as_node_naming_a_missing_node_is_4xx(http: httpx.AsyncClient, thread: str) -> None:
    for as_node in ("no_such_node", ""):
        response = await http.post(
            f"/threads/{thread}/state", json={"values": {"draft": "x"}, "as_node": as_node}
        )
        assert_error(response, (400, 404, 422))


async def test_unknown_checkpoint_is_404(http: httpx.AsyncClient, thread: str) -> None:
    missing = "1f000000-0000-6000-8000-000000000000"
    assert_error(await http.get(f"/threads/{thread}/state/{missing}"), 404, "not_found")
    response = await http.post(
        f"/threads/{thread}/state", json={"values": {"draft": "x"}, "checkpoint_id": missing}
    )
    assert_error(response, 404, "not_found")
    # A run asked to start from a checkpoint that does not exist must not silently start
    # from an empty state (a new root branch on the thread).
    for checkpoint_id in (missing, "garbage"):
        response = await http.post(
            f"/threads/{thread}/runs/wait",
            json={
                "assistant_id": "approval",
                "input": {"topic": "z"},
                "checkpoint_id": checkpoint_id,
            },
        )
        assert_error(response, (404, 422))


async def test_failing_graph_is_run_error_not_http_error(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = [p async for p in client.runs.stream(tid, "approval", input={"topic": "explode"})]
    assert parts[0].event == "metadata"
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "ValueError", "message": "the topic exploded"}
    run = await client.runs.get(tid, parts[0].data["run_id"])
    assert run["status"] == "error"
    thread = await client.threads.get(tid)
    assert thread["status"] == "error"
    assert thread["error"] is not None
    # Joining the failed run's stream shows the same error event and ends.
    async with http.stream("GET", f"/threads/{tid}/runs/{run['run_id']}/stream") as joined:
        events, _ = parse_sse(await joined.aread())
    assert events[-1].event == "error"
    assert events[-1].data["error"] == "ValueError"
    assert "Traceback" not in str(events[-1].data)


async def test_nul_characters_are_422(http: httpx.AsyncClient, thread: str) -> None:
    bodies: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/threads", {"metadata": {"a": "b\u0000c"}}),
        ("POST", "/threads", {"metadata": {"a\u0000": "b"}}),
        ("POST", "/threads", {"metadata": {"nested": [{"x": "\u0000"}]}}),
        ("PATCH", f"/threads/{thread}", {"metadata": {"a": "\u0000"}}),
        ("POST", "/threads/search", {"metadata": {"a": "\u0000"}}),
        ("POST", "/assistants", {"graph_id": "echo", "metadata": {"a": "\u0000"}}),
        ("POST", "/assistants", {"graph_id": "echo", "name": "bad\u0000name"}),
        (
            "POST",
            f"/threads/{thread}/runs",
            {"assistant_id": "approval", "metadata": {"a": "\u0000"}},
        ),
        (
            "POST",
            f"/threads/{thread}/runs",
            {"assistant_id": "approval", "command": {"resume": "\u0000"}},
        ),
        ("POST", f"/threads/{thread}/state", {"values": {"draft": "\u0000"}}),
    ]
    for method, path, body in bodies:
        assert_error(await http.request(method, path, json=body), 422)


async def test_no_server_errors_on_odd_requests(server_url: str, thread: str) -> None:
    """Inputs that crashed peers (see FIGURES.md): never a 500, never a traceback.

    Every offender is collected so one run lists them all; each request uses a fresh
    connection because a server error closes the connection it happened on.
    """
    json_requests: list[tuple[str, str, Any]] = [
        ("POST", "/threads/search", {"limit": 10**20}),
        ("POST", "/threads/search", {"offset": -1}),
        ("POST", "/threads/search", {"limit": "ten"}),
        ("POST", "/threads/count", {"status": "weird"}),
        ("POST", "/assistants/search", {"limit": 0}),
        ("POST", "/assistants/search", {"offset": 2**64}),
        ("POST", "/assistants/approval/latest", {"version": 2**70}),
        ("POST", "/assistants/approval/latest", {"version": 2**31}),
        ("POST", "/assistants/approval/versions", {"limit": -5}),
        ("GET", f"/threads/{thread}/history?limit=0", None),
        ("GET", f"/threads/{thread}/history?limit=99999999999999999999", None),
        ("GET", f"/threads/{thread}/runs?limit=-1", None),
        ("GET", f"/threads/{thread}/runs?status=bogus", None),
        ("POST", f"/threads/{thread}/runs/{uuid.uuid4()}/cancel?action=explode", None),
        ("POST", "/runs/batch", [{"assistant_id": "echo"}] * 101),
        (
            "POST",
            f"/threads/{thread}/runs",
            {"assistant_id": "echo", "stream_mode": ["values"] * 17},
        ),
        ("POST", "/runs/wait", {"assistant_id": "echo", "after_seconds": 10**30}),
        ("POST", "/runs/wait", {"assistant_id": ""}),
        ("POST", "/runs/wait", {"assistant_id": "x" * 10_000}),
        ("POST", "/threads", {"metadata": "not an object"}),
        ("POST", "/threads", {"metadata": {"big": 2**70}}),
        ("POST", "/assistants", {"graph_id": "echo", "metadata": {"big": -(2**80)}}),
        ("POST", "/threads/search", {"metadata": {"big": 2**70}}),
        ("PATCH", "/assistants/approval", {"name": "renamed"}),
        ("DELETE", "/assistants/approval", None),
        ("GET", "/assistants/approval/subgraphs/does-not-exist", None),
        ("POST", "/threads", [1, 2, 3]),
        ("PUT", "/threads", {}),
    ]
    raw_requests: list[tuple[str, bytes]] = [
        ("/threads", b'{"metadata": {"inf": 1e400}}'),
        ("/threads", b'{"metadata": {"nan": NaN}}'),
        ("/threads", b"[" * 5000 + b"]" * 5000),
    ]
    offenders: list[tuple[str, str, int, str]] = []

    def check(method: str, path: str, response: httpx.Response) -> None:
        if response.status_code >= 500 or "Traceback" in response.text:
            offenders.append((method, path, response.status_code, response.text[:200]))
        elif response.status_code >= 400:
            assert_error(response, response.status_code)

    for method, path, body in json_requests:
        async with httpx.AsyncClient(base_url=server_url, timeout=30.0) as http:
            if body is None:
                response = await http.request(method, path)
            else:
                response = await http.request(method, path, json=body)
        check(method, path, response)
    for path, raw in raw_requests:
        async with httpx.AsyncClient(base_url=server_url, timeout=30.0) as http:
            response = await http.post(
                path, content=raw, headers={"content-type": "application/json"}
            )
        check("POST", f"{path} {raw[:30]!r}", response)
    # Header values outside latin-1 must not break the request either.
    async with httpx.AsyncClient(base_url=server_url, timeout=30.0) as http:
        response = await http.post("/threads", json={}, headers={"x-request-id": "été".encode()})
    assert response.status_code == 200
    assert offenders == [], "\n".join(map(str, offenders))
