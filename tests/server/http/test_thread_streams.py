"""A thread's streams, spoken to by the official langgraph-sdk over a real server: the
protocol's commands and event streams (`client.threads.stream`, over SSE and websocket)
and `GET /threads/{id}/stream` (`client.threads.join_stream`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.stream.transport import ProtocolSseTransport, ProtocolWebSocketTransport

Transport = Literal["sse", "websocket"]


async def _until_end(events: AsyncIterator[Any], runs: int = 1) -> list[dict[str, Any]]:
    """Events up to and including the terminal lifecycle event of the `runs`-th run to end
    (websocket command responses, which have no `method`, left out)."""
    seen: list[dict[str, Any]] = []
    ended = 0
    async with asyncio.timeout(30):
        async for event in events:
            if "method" not in event:
                continue
            seen.append(event)
            params = event.get("params") or {}
            if (
                event.get("method") == "lifecycle"
                and not params.get("namespace")
                and params["data"]["event"] in ("completed", "failed")
            ):
                ended += 1
                if ended == runs:
                    return seen
    raise AssertionError(f"the stream ended before the run did: {seen}")


def _stable(event: dict[str, Any]) -> dict[str, Any]:
    """An event without its timestamp (stamped when it is sent)."""
    params = {k: v for k, v in event["params"].items() if k != "timestamp"}
    return event | {"params": params}


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        data = event["params"]["data"]
        out.append(
            f"lifecycle:{data['event']}" if event["method"] == "lifecycle" else event["method"]
        )
    return out


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_sdk_thread_stream_runs_and_follows_to_the_end(
    client: LangGraphClient, transport: Transport
) -> None:
    async with client.threads.stream(assistant_id="echo", transport=transport) as thread:
        started = await thread.run.start(input={"text": "hi"})
        events = await _until_end(thread.subscribe(["lifecycle", "values"]))
        output = await thread.output.with_timeout(30)
        thread_id = thread.thread_id

    assert uuid.UUID(started["run_id"])
    assert _kinds(events) == [
        "lifecycle:running",
        "values",
        "values",
        "values",
        "lifecycle:completed",
    ]
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    assert len({e["event_id"] for e in events}) == len(events)
    assert events[0]["params"]["data"] == {"event": "running", "graph_name": "echo"}
    assert events[-2]["params"]["data"] == {"text": "hi!", "steps": ["first", "second"]}
    assert output == {"text": "hi!", "steps": ["first", "second"]}
    runs = await client.runs.list(thread_id)
    assert [r["run_id"] for r in runs] == [started["run_id"]]
    assert runs[0]["status"] == "success"


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_event_stream_resumes_after_since(
    client: LangGraphClient, transport: Transport
) -> None:
    thread_id = str(uuid.uuid4())
    async with client.threads.stream(thread_id, assistant_id="echo") as thread:
        await thread.run.start(input={"text": "one"})
        await thread.output.with_timeout(30)
        await thread.run.start(input={"text": "two"})
        await thread.output.with_timeout(30)

    kind = ProtocolWebSocketTransport if transport == "websocket" else ProtocolSseTransport
    wire = kind(client=client.http.client, thread_id=thread_id)
    channels = ["lifecycle", "values", "updates"]
    try:
        whole = wire.open_event_stream({"channels": channels})
        history = await _until_end(whole.events, runs=2)
        await whole.close()
        cut = history[4]["seq"]
        rest = wire.open_event_stream({"channels": channels, "since": cut})
        resumed = await _until_end(rest.events, runs=2)
        await rest.close()
    finally:
        await wire.close()

    # Two runs, numbered on: each opens with `running` and closes with `completed`.
    kinds = _kinds(history)
    assert kinds.count("lifecycle:running") == 2
    assert kinds.count("lifecycle:completed") == 2
    assert "updates" in kinds
    # Every event of the thread is numbered, those of other channels (`tasks`) too.
    seqs = [e["seq"] for e in history]
    assert seqs == sorted(set(seqs))
    assert seqs[0] == 1
    assert history[-2]["params"]["data"]["text"] == "two!"
    # `since` resumes after that seq: the same events, numbered and named alike.
    assert [_stable(e) for e in resumed] == [_stable(e) for e in history[5:]]


async def test_commands_answer_like_the_official_server(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    url = f"/threads/{thread_id}/commands"

    bogus = await http.post(url, json={"id": 2, "method": "bogus"})
    assert bogus.status_code == 200
    assert bogus.json() == {
        "type": "error",
        "id": 2,
        "error": "unknown_command",
        "message": "Unknown protocol command: bogus",
    }
    malformed = await http.post(url, json={"id": "x", "method": "run.start"})
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "invalid_argument"
    no_assistant = await http.post(url, json={"id": 3, "method": "run.start", "params": {}})
    assert no_assistant.json()["message"] == "run.start requires an assistant_id."

    started = await http.post(
        url,
        json={"id": 4, "method": "run.start", "params": {"assistant_id": "echo", "input": {}}},
    )
    assert started.status_code == 200
    body = started.json()
    assert body["type"] == "success"
    assert body["id"] == 4
    assert body["meta"] == {"applied_through_seq": 0}
    run = await http.get(f"/threads/{thread_id}/runs/{body['result']['run_id']}")
    assert run.status_code == 200

    bad = await http.post(f"/threads/{thread_id}/stream/events", json={"channels": ["nope"]})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("channels contains unsupported entries: nope.")
    empty = await http.post(f"/threads/{thread_id}/stream/events", json={})
    assert empty.status_code == 400

    paths = (await http.get("/openapi.json")).json()["paths"]
    assert "post" in paths["/threads/{thread_id}/commands"]
    assert "post" in paths["/threads/{thread_id}/stream/events"]
    assert "get" in paths["/threads/{thread_id}/stream"]


async def test_join_thread_stream_follows_its_runs(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    frames: list[tuple[str, Any, str]] = []

    async def join() -> None:
        async with http.stream("GET", f"/threads/{thread_id}/stream") as response:
            assert response.status_code == 200
            event = data = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    frames.append((event, httpx.Response(200, content=data).json(), line[4:]))
                    if event == "metadata" and frames[-1][1].get("status") == "run_done":
                        return

    joiner = asyncio.create_task(join())
    await asyncio.sleep(0.5)
    run = await client.runs.create(thread_id, "echo", input={"text": "j"}, stream_mode="values")
    await asyncio.wait_for(joiner, 30)

    names = [name for name, _, _ in frames]
    assert names == ["metadata", "values", "values", "values", "metadata"]
    assert frames[0][1] == {"run_id": run["run_id"], "attempt": 1}
    assert frames[-1][1] == {"status": "run_done", "run_id": run["run_id"]}
    assert frames[-2][1] == {"text": "j!", "steps": ["first", "second"]}

    # Resuming after an event: the rest of the thread's events, under the same ids.
    resumed = [
        part
        async for part in _parts(
            await client.threads.join_stream(thread_id, last_event_id=frames[1][2]), 3
        )
    ]
    assert [p.event for p in resumed] == ["values", "values", "metadata"]
    assert resumed[1].data == frames[3][1]

    lifecycle = [
        part
        async for part in _parts(
            await client.threads.join_stream(
                thread_id, last_event_id=frames[0][2], stream_mode="lifecycle"
            ),
            1,
        )
    ]
    assert [(p.event, p.data) for p in lifecycle] == [("metadata", frames[-1][1])]

    invalid = await http.get(f"/threads/{thread_id}/stream", params={"stream_modes": "bogus"})
    assert invalid.status_code == 422
    bad_cursor = await http.get(
        f"/threads/{thread_id}/stream", headers={"Last-Event-ID": "garbage"}
    )
    assert bad_cursor.status_code == 422


async def _parts(stream: AsyncIterator[Any], count: int) -> AsyncIterator[Any]:
    async with asyncio.timeout(30):
        n = 0
        async for part in stream:
            yield part
            n += 1
            if n == count:
                return


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_sdk_thread_stream_interrupt_and_respond(
    client: LangGraphClient, transport: Transport
) -> None:
    async with client.threads.stream(assistant_id="approval", transport=transport) as thread:
        await thread.run.start(input={"topic": "owls"})
        async with asyncio.timeout(30):
            # The SDK offers `interrupted` as an attribute only, set by its lifecycle watcher.
            while not thread.interrupted:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        [pending] = thread.interrupts
        await thread.run.respond({"approved": True, "feedback": "fine"})
        output = await thread.output.with_timeout(30)
        thread_id = thread.thread_id

    assert pending["namespace"] == []
    assert output["approved"] is True
    assert output["log"] == ["draft", "review", "publish"]
    wire = ProtocolSseTransport(client=client.http.client, thread_id=thread_id)
    try:
        stream = wire.open_event_stream({"channels": ["lifecycle", "input", "custom"]})
        history = await _until_end(stream.events)
        await stream.close()
    finally:
        await wire.close()
    assert _kinds(history) == [
        "lifecycle:running",
        "custom",
        "input.requested",
        "lifecycle:interrupted",
        "lifecycle:running",
        "lifecycle:completed",
    ]
    assert history[1]["params"]["data"] == {"payload": {"progress": "drafting"}}
    requested = history[2]["params"]["data"]
    assert requested["interrupt_id"] == pending["interrupt_id"]
    assert requested["payload"] == {"question": "Approve this draft?", "draft": "Draft about owls"}


async def test_failed_run_ends_with_its_error(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="approval") as thread:
        await thread.run.start(input={"topic": "explode"})
        with pytest.raises(RuntimeError, match="the topic exploded"):
            await thread.output.with_timeout(30)


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_sdk_thread_stream_messages(client: LangGraphClient, transport: Transport) -> None:
    async with client.threads.stream(assistant_id="chat", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "hi"}]})
        async with asyncio.timeout(30):
            # Each message is fed as the projection is read: read it all, then the texts.
            messages = [message async for message in thread.messages]
            texts = [await message.text for message in messages]
        thread_id = thread.thread_id

    assert texts == ["hello there friend"]
    wire = ProtocolSseTransport(client=client.http.client, thread_id=thread_id)
    try:
        stream = wire.open_event_stream({"channels": ["lifecycle", "messages"]})
        history = await _until_end(stream.events)
        await stream.close()
    finally:
        await wire.close()
    events = [e["params"]["data"]["event"] for e in history if e["method"] == "messages"]
    assert events == [
        "message-start",
        "content-block-start",
        *["content-block-delta"] * 5,
        "content-block-finish",
        "message-finish",
    ]
    start = next(e for e in history if e["method"] == "messages")["params"]["data"]
    assert start["role"] == "ai"
