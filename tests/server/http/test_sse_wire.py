"""The SSE wire format, read as raw bytes with httpx and compared with the official captures."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.support.api import SSEEvent, parse_sse

CAPTURES = Path("/work/shared/reference/sse")


@pytest.fixture
async def http(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30.0) as client:
        yield client


async def _new_thread(http: httpx.AsyncClient) -> str:
    response = await http.post("/threads", json={})
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


async def _stream(
    http: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> tuple[httpx.Response, bytes]:
    async with http.stream("POST", path, json=body) as response:
        raw = await response.aread()
    return response, raw


def _comparable(value: Any) -> Any:
    """Interrupt ids are random, and the captured `approval` graph had no `log` channel;
    everything else must match the capture."""
    value = copy.deepcopy(value)
    if isinstance(value, dict):
        value.pop("log", None)
        for key, item in list(value.items()):
            value[key] = _comparable(item) if key != "__interrupt__" else item
        for item in value.get("__interrupt__", []):
            item.pop("id", None)
    return value


def _capture(name: str) -> list[SSEEvent]:
    events, _ = parse_sse((CAPTURES / name).read_bytes())
    return events


async def test_framing_and_headers_match_the_official_capture(http: httpx.AsyncClient) -> None:
    tid = await _new_thread(http)
    response, raw = await _stream(
        http,
        f"/threads/{tid}/runs/stream",
        {
            "assistant_id": "approval",
            "input": {"topic": "cats"},
            "stream_mode": ["values", "updates", "custom"],
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")

    # Framing: every frame is `event:` + one JSON `data:` line (+ optional `id:`), frames
    # separated by one blank line, nothing else on the wire but heartbeat comments.
    text = raw.decode().replace("\r\n", "\n")
    assert text.endswith("\n\n")
    for frame in text.strip("\n").split("\n\n"):
        lines = [line for line in frame.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        # Field order is free in SSE (the official server writes event, data, id).
        fields = sorted(line.split(": ", 1)[0] for line in lines)
        assert fields in (["data", "event"], ["data", "event", "id"]), frame
    events, _ = parse_sse(raw)

    first = events[0]
    assert first.event == "metadata"
    assert set(first.data) == {"run_id", "attempt"}
    assert first.data["attempt"] == 1
    run_id = first.data["run_id"]
    assert response.headers["location"] == f"/threads/{tid}/runs/{run_id}/stream"
    assert response.headers["content-location"] == f"/threads/{tid}/runs/{run_id}"

    official = _capture("stream_values_updates_custom_interrupt.sse")
    assert [e.event for e in events] == [e.event for e in official]
    for ours, theirs in zip(events[1:], official[1:], strict=True):
        assert _comparable(ours.data) == _comparable(theirs.data), ours.event


async def test_stateless_stream_headers(http: httpx.AsyncClient) -> None:
    response, raw = await _stream(
        http, "/runs/stream", {"assistant_id": "echo", "input": {"text": "w"}}
    )
    assert response.status_code == 200
    events, _ = parse_sse(raw)
    run_id = events[0].data["run_id"]
    location = response.headers["content-location"]
    assert location.endswith(f"/runs/{run_id}")
    assert location.startswith("/threads/")
    assert response.headers["location"] == f"{location}/stream"
    assert events[-1].event == "values"
    assert events[-1].data == {"text": "w!", "steps": ["first", "second"]}


async def test_event_names_match_the_official_captures(http: httpx.AsyncClient) -> None:
    """For each capture, the same set of event names for the same stream modes."""
    cases = [
        ("stream_messages.sse", "chat", ["messages"]),
        ("stream_messages_tuple.sse", "chat", ["messages-tuple"]),
        ("stream_checkpoints_debug.sse", "approval", ["checkpoints", "debug", "tasks"]),
        ("stream_events_tasks_debug.sse", "echo", ["events", "tasks", "debug"]),
    ]
    inputs = {
        "chat": {"messages": [{"role": "user", "content": "hi"}]},
        "approval": {"topic": "dogs"},
        "echo": {"text": "e"},
    }
    for capture, graph, modes in cases:
        tid = await _new_thread(http)
        response, raw = await _stream(
            http,
            f"/threads/{tid}/runs/stream",
            {"assistant_id": graph, "input": inputs[graph], "stream_mode": modes},
        )
        assert response.status_code == 200
        events, _ = parse_sse(raw)
        official = _capture(capture)
        assert events[0].event == "metadata"
        ours = {e.event for e in events}
        theirs = {e.event for e in official}
        assert ours == theirs, (capture, ours ^ theirs)


async def test_messages_tuple_matches_capture_shape(http: httpx.AsyncClient) -> None:
    tid = await _new_thread(http)
    _, raw = await _stream(
        http,
        f"/threads/{tid}/runs/stream",
        {
            "assistant_id": "chat",
            "input": {"messages": [{"role": "user", "content": "hi"}]},
            "stream_mode": "messages-tuple",
        },
    )
    events, _ = parse_sse(raw)
    official = _capture("stream_messages_tuple.sse")
    ours = [e for e in events if e.event == "messages"]
    theirs = [e for e in official if e.event == "messages"]
    assert [e.data[0]["content"] for e in ours] == [e.data[0]["content"] for e in theirs]
    for mine, ref in zip(ours, theirs, strict=True):
        assert set(ref.data[0]) <= set(mine.data[0])
        assert mine.data[0]["type"] == ref.data[0]["type"]
        for key in ("langgraph_node", "langgraph_step", "run_id", "thread_id", "graph_id"):
            assert key in mine.data[1]


async def test_failing_graph_ends_with_error_event(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    tid = await _new_thread(http)
    # A successful history first.
    await client.runs.wait(tid, "approval", input={"topic": "cats"})
    await client.runs.wait(tid, "approval", command={"resume": {"approved": True}})
    history_before = await client.threads.get_history(tid, limit=100)
    assert len(history_before) >= 5

    response, raw = await _stream(
        http,
        f"/threads/{tid}/runs/stream",
        {"assistant_id": "approval", "input": {"topic": "explode"}, "stream_mode": ["values"]},
    )
    assert response.status_code == 200
    assert b"Traceback" not in raw
    events, _ = parse_sse(raw)
    assert events[0].event == "metadata"
    run_id = events[0].data["run_id"]
    assert events[-1].event == "error"
    assert events[-1].data == {"error": "ValueError", "message": "the topic exploded"}
    assert [e.event for e in events].count("error") == 1

    run = await client.runs.get(tid, run_id)
    assert run["status"] == "error"
    thread = await client.threads.get(tid)
    assert thread["status"] == "error"

    history_after = await client.threads.get_history(tid, limit=100)
    after = {h["checkpoint_id"]: h for h in history_after}
    for old in history_before:
        assert old["checkpoint_id"] in after
        assert after[old["checkpoint_id"]]["values"] == old["values"]
    state = await client.threads.get_state(tid, checkpoint_id=history_before[0]["checkpoint_id"])
    assert state["values"]["log"] == ["draft", "review", "publish"]

    # The thread is usable again: a good run clears the error.
    ok = await client.runs.wait(tid, "approval", input={"topic": "calm"})
    assert ok["draft"] == "Draft about calm"
    assert (await client.threads.get(tid))["status"] == "interrupted"


async def test_wait_on_failing_graph_returns_error_object(http: httpx.AsyncClient) -> None:
    tid = await _new_thread(http)
    response = await http.post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "approval", "input": {"topic": "explode"}},
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {"__error__": {"error": "ValueError", "message": "the topic exploded"}}
    assert "Traceback" not in response.text


async def test_rejoin_with_last_event_id_replays_only_later_events(
    http: httpx.AsyncClient,
) -> None:
    tid = await _new_thread(http)
    response, raw = await _stream(
        http,
        f"/threads/{tid}/runs/stream",
        {
            "assistant_id": "echo",
            "input": {"text": "r"},
            "stream_mode": ["values", "updates"],
            "stream_resumable": True,
        },
    )
    assert response.status_code == 200
    events, _ = parse_sse(raw)
    assert all(e.id for e in events), "resumable streams carry an id on every event"
    assert len({e.id for e in events}) == len(events)
    run_id = events[0].data["run_id"]
    assert len(events) >= 5

    cut = 2
    async with asyncio.timeout(15):
        async with http.stream(
            "GET",
            f"/threads/{tid}/runs/{run_id}/stream",
            headers={"Last-Event-ID": events[cut].id or ""},
        ) as rejoined:
            assert rejoined.status_code == 200
            assert rejoined.headers["content-type"].startswith("text/event-stream")
            replay_raw = await rejoined.aread()
    replay, _ = parse_sse(replay_raw)
    assert [(e.id, e.event, e.data) for e in replay] == [
        (e.id, e.event, e.data) for e in events[cut + 1 :]
    ]

    # The last id replays nothing, and the finished stream still ends.
    async with asyncio.timeout(15):
        async with http.stream(
            "GET",
            f"/threads/{tid}/runs/{run_id}/stream",
            headers={"Last-Event-ID": events[-1].id or ""},
        ) as rejoined:
            tail, _ = parse_sse(await rejoined.aread())
    assert tail == []

    # Without Last-Event-ID, a finished run's stream replays everything and ends.
    async with asyncio.timeout(15):
        async with http.stream("GET", f"/threads/{tid}/runs/{run_id}/stream") as rejoined:
            everything, _ = parse_sse(await rejoined.aread())
    assert [(e.event, e.data) for e in everything] == [(e.event, e.data) for e in events]


async def test_join_stream_follows_a_live_run(http: httpx.AsyncClient) -> None:
    tid = await _new_thread(http)
    created = await http.post(
        f"/threads/{tid}/runs",
        json={
            "assistant_id": "slow",
            "input": {"delay": 0.2},
            "stream_mode": ["updates"],
            "stream_resumable": True,
        },
    )
    assert created.status_code == 200
    run = created.json()
    assert created.headers["content-location"] == f"/threads/{tid}/runs/{run['run_id']}"
    async with asyncio.timeout(20):
        async with http.stream("GET", f"/threads/{tid}/runs/{run['run_id']}/stream") as joined:
            events, _ = parse_sse(await joined.aread())
    updates = [e.data for e in events if e.event == "updates"]
    assert [next(iter(u)) for u in updates] == ["s1", "s2", "s3", "s4"]


def _frames(raw: bytes) -> list[bytes]:
    """The event frames of a raw stream (heartbeat comments left out), as bytes."""
    return [f for f in raw.split(b"\r\n\r\n") if f and not f.startswith(b":")]


async def test_frames_are_written_as_the_official_server_writes_them(
    http: httpx.AsyncClient,
) -> None:
    """`event:`, `data:`, then `id:` only when the run is resumable, CRLF line endings
    (`langgraph_api.sse.json_to_sse`), as in the raw captures."""
    official = _frames((CAPTURES / "stream_resumable_with_ids.sse").read_bytes())
    assert all(f.split(b"\r\n")[2].startswith(b"id: ") for f in official)
    for resumable in (False, True):
        tid = await _new_thread(http)
        _, raw = await _stream(
            http,
            f"/threads/{tid}/runs/stream",
            {
                "assistant_id": "echo",
                "input": {"text": "o"},
                "stream_mode": ["values", "updates"],
                "stream_resumable": resumable,
            },
        )
        assert raw.endswith(b"\r\n\r\n")
        frames = _frames(raw)
        assert len(frames) >= 5
        for frame in frames:
            lines = frame.split(b"\r\n")
            assert lines[0].startswith(b"event: "), frame
            assert lines[1].startswith(b"data: "), frame
            if resumable:
                assert len(lines) == 3, frame
                assert lines[2].startswith(b"id: "), frame
            else:
                assert len(lines) == 2, frame
            assert b"\n" not in frame.replace(b"\r\n", b""), frame
        first = frames[0].split(b"\r\n")
        assert first[0] == b"event: metadata"

        if resumable:
            run_id = parse_sse(raw)[0][0].data["run_id"]
            async with http.stream("GET", f"/threads/{tid}/runs/{run_id}/stream") as joined:
                rejoined = _frames(await joined.aread())
            assert rejoined == frames, "a rejoin writes the very same bytes, ids included"


async def test_wait_answers_location_of_join_and_content_location_of_run(
    http: httpx.AsyncClient,
) -> None:
    """As `api/runs.py` `wait_run` and `wait_run_stateless` of the official server."""
    tid = await _new_thread(http)
    response = await http.post(
        f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {"text": "l"}}
    )
    assert response.status_code == 200, response.text
    runs = (await http.get(f"/threads/{tid}/runs")).json()
    run_id = runs[0]["run_id"]
    assert response.headers["location"] == f"/threads/{tid}/runs/{run_id}/join"
    assert response.headers["content-location"] == f"/threads/{tid}/runs/{run_id}"

    response = await http.post("/runs/wait", json={"assistant_id": "echo", "input": {"text": "s"}})
    assert response.status_code == 200, response.text
    location = response.headers["content-location"]
    assert location.startswith("/threads/")
    assert "/runs/" in location
    assert response.headers["location"] == f"{location}/join"
