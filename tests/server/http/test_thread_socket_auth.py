"""The thread websocket under custom auth (`langgraph.json` `auth.path`): `threads.read` is
asked before the socket opens (refused: 403, filtered out: 404, both before accept),
`threads.create_run` for each `run.start` / `input.respond` (refused: a `forbidden` error
message, no run), with the handler's metadata stamped on the run; `POST .../commands` runs
the same `create_run` handler on the command's run arguments. A binary frame is answered
with an `invalid_argument` error and the socket stays open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.security import security_settings, trellis

CONFIG = Path(__file__).resolve().parents[2] / "support" / "auth_app" / "langgraph.json"


@pytest.fixture(scope="module")
async def url(security_db: str) -> AsyncIterator[str]:
    settings = security_settings(security_db, auth_mode="custom", graphs_config=CONFIG)
    async with trellis(settings) as base:
        yield base


def _headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer user-{user}"}


def _ws(url: str, thread_id: str) -> str:
    return "ws" + url.removeprefix("http") + f"/threads/{thread_id}/stream/events"


async def _thread(url: str, user: str) -> str:
    async with httpx.AsyncClient(base_url=url, headers=_headers(user), timeout=20) as http:
        created = await http.post("/threads", json={})
        assert created.status_code == 200, created.text
        return str(created.json()["thread_id"])


async def _runs(url: str, user: str, thread_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, headers=_headers(user), timeout=20) as http:
        listed = await http.get(f"/threads/{thread_id}/runs")
        assert listed.status_code == 200, listed.text
        runs: list[dict[str, Any]] = listed.json()
        return runs


async def _response(socket: ClientConnection, command_id: int | None) -> dict[str, Any]:
    """The next message answering `command_id` (events in between are skipped)."""
    async with asyncio.timeout(20):
        while True:
            message: dict[str, Any] = orjson.loads(await socket.recv())
            if message.get("type") in ("success", "error") and message.get("id") == command_id:
                return message


async def test_threads_read_is_asked_before_the_socket_opens(url: str) -> None:
    thread_id = await _thread(url, "sam")
    own = await _thread(url, "banned")  # a thread of their own, which they may not read
    with pytest.raises(InvalidStatus) as refused:
        async with connect(_ws(url, own), additional_headers=_headers("banned")):
            pass
    assert refused.value.response.status_code == 403
    assert orjson.loads(refused.value.response.body) == {"detail": "Forbidden", "code": "forbidden"}
    with pytest.raises(InvalidStatus) as other:  # another owner's thread does not exist
        async with connect(_ws(url, thread_id), additional_headers=_headers("erin")):
            pass
    assert other.value.response.status_code == 403
    # The owner's own thread moved out of the handler's `{"owner": ...}` filter: not opened.
    moved = await _thread(url, "sam")
    async with httpx.AsyncClient(base_url=url, headers=_headers("sam"), timeout=20) as http:
        patched = await http.patch(f"/threads/{moved}", json={"metadata": {"owner": "x"}})
        assert patched.status_code == 200, patched.text
    with pytest.raises(InvalidStatus) as filtered:
        async with connect(_ws(url, moved), additional_headers=_headers("sam")):
            pass
    assert filtered.value.response.status_code == 404
    assert orjson.loads(filtered.value.response.body)["code"] == "not_found"
    async with connect(_ws(url, thread_id), additional_headers=_headers("sam")) as socket:
        await socket.send(orjson.dumps({"id": 1, "method": "agent.getTree", "params": {}}).decode())
        assert (await _response(socket, 1))["type"] in ("success", "error")


async def test_run_start_over_the_socket_asks_threads_create_run(url: str) -> None:
    thread_id = await _thread(url, "sam")
    async with connect(_ws(url, thread_id), additional_headers=_headers("sam")) as socket:
        forbidden = {
            "id": 1,
            "method": "run.start",
            "params": {"assistant_id": "echo", "input": {"text": "forbidden"}},
        }
        await socket.send(orjson.dumps(forbidden).decode())
        refused = await _response(socket, 1)
        assert refused["type"] == "error"
        assert refused["error"] == "forbidden"
        assert await _runs(url, "sam", thread_id) == []

        allowed = {
            "id": 2,
            "method": "run.start",
            "params": {"assistant_id": "echo", "input": {"text": "ok"}, "metadata": {"k": 1}},
        }
        await socket.send(orjson.dumps(allowed).decode())
        started = await _response(socket, 2)
        assert started["type"] == "success", started
    runs = await _runs(url, "sam", thread_id)
    assert [run["run_id"] for run in runs] == [started["result"]["run_id"]]
    assert runs[0]["metadata"]["owner"] == "sam"  # the handler's stamp reached the run
    assert runs[0]["metadata"]["k"] == 1


async def test_input_respond_over_the_socket_asks_threads_create_run(url: str) -> None:
    thread_id = await _thread(url, "sam")
    async with connect(_ws(url, thread_id), additional_headers=_headers("sam")) as socket:
        start = {
            "id": 1,
            "method": "run.start",
            "params": {"assistant_id": "approval", "input": {"topic": "cats"}},
        }
        await socket.send(orjson.dumps(start).decode())
        started = await _response(socket, 1)
        assert started["type"] == "success"
        run_id = started["result"]["run_id"]
        async with httpx.AsyncClient(base_url=url, headers=_headers("sam"), timeout=20) as http:
            joined = await http.get(f"/threads/{thread_id}/runs/{run_id}/join")  # to its interrupt
            assert joined.status_code == 200, joined.text
            state = (await http.get(f"/threads/{thread_id}/state")).json()
        interrupt_id = state["interrupts"][0]["id"]
        respond: dict[str, Any] = {
            "id": 2,
            "method": "input.respond",
            "params": {"interrupt_id": interrupt_id, "response": "forbidden"},
        }
        await socket.send(orjson.dumps(respond).decode())
        refused = await _response(socket, 2)
        assert refused["type"] == "error"
        assert refused["error"] == "forbidden"
        assert len(await _runs(url, "sam", thread_id)) == 1  # no resume run

        respond["id"] = 3
        respond["params"]["response"] = {"approved": True}
        await socket.send(orjson.dumps(respond).decode())
        assert (await _response(socket, 3))["type"] == "success"
    runs = await _runs(url, "sam", thread_id)
    assert len(runs) == 2
    assert all(run["metadata"]["owner"] == "sam" for run in runs)


async def test_post_commands_runs_create_run_on_the_commands_arguments(url: str) -> None:
    thread_id = await _thread(url, "sam")
    async with httpx.AsyncClient(base_url=url, headers=_headers("sam"), timeout=20) as http:
        path = f"/threads/{thread_id}/commands"
        command: dict[str, Any] = {
            "id": 1,
            "method": "run.start",
            "params": {"assistant_id": "echo", "input": {"text": "forbidden"}},
        }
        refused = await http.post(path, json=command)
        assert refused.status_code == 403, refused.text
        assert await _runs(url, "sam", thread_id) == []

        command["params"]["input"] = {"text": "fine"}
        command["params"]["metadata"] = {"owner": "mallory"}
        started = await http.post(path, json=command)
        assert started.status_code == 200, started.text
        assert started.json()["type"] == "success", started.json()
    runs = await _runs(url, "sam", thread_id)
    assert [run["run_id"] for run in runs] == [started.json()["result"]["run_id"]]
    assert runs[0]["metadata"]["owner"] == "sam"  # stamped by the handler, not as sent


async def test_a_binary_frame_is_an_invalid_argument_and_the_socket_stays_open(url: str) -> None:
    thread_id = await _thread(url, "sam")
    async with connect(_ws(url, thread_id), additional_headers=_headers("sam")) as socket:
        await socket.send(b'{"id": 1, "method": "agent.getTree"}')  # bytes: a binary frame
        answer = await _response(socket, None)
        assert answer["type"] == "error"
        assert answer["error"] == "invalid_argument"
        assert "binary" in answer["message"]
        subscribe = {
            "id": 2,
            "method": "subscription.subscribe",
            "params": {"channels": ["values"]},
        }
        await socket.send(orjson.dumps(subscribe).decode())
        assert (await _response(socket, 2))["type"] == "success"
