"""The thread protocol's `messages`, `tools` and `checkpoints` channels, as langgraph-api
0.16.7 builds them (`stream_v2.py` / `event_streaming/session.py`), read with the official
langgraph-sdk's protocol transports over a real server:

* `messages`: langchain-core's message-to-protocol bridge (`message_to_events` for a whole
  message, the `chunks_to_events` lifecycle for a streamed one), tool-call blocks included;
  tool results are not replayed there but mirrored from `tools` as `tool` messages in the
  `tools:<tool_call_id>` namespace (`_emit_tool_output_message`);
* `tools`: LangGraph's `tools` stream (`tool-started` / `tool-finished`), which the
  protocol's runs stream because `run.start` marks them `__event_streaming_v2`; other run
  routes refuse `tools` and `lifecycle` with the official 422 (`models/run.py`);
* `checkpoints`: one `{id, parent_id?, step, source}` envelope per checkpoint.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Literal

import httpx
import pytest
from langchain_core.language_models._compat_bridge import message_to_events
from langchain_core.messages import AIMessage
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.stream.transport import ProtocolSseTransport, ProtocolWebSocketTransport

from tests.support.api import assert_error

Transport = Literal["sse", "websocket"]


async def _history(client: LangGraphClient, thread_id: str, transport: Transport) -> list[Any]:
    """The thread's protocol events on the three channels (and lifecycle), to the run's end."""
    kind = ProtocolWebSocketTransport if transport == "websocket" else ProtocolSseTransport
    wire = kind(client=client.http.client, thread_id=thread_id)
    seen: list[Any] = []
    try:
        stream = wire.open_event_stream(
            {"channels": ["lifecycle", "messages", "tools", "checkpoints"]}
        )
        async with asyncio.timeout(30):
            async for event in stream.events:
                if "method" not in event:
                    continue
                seen.append(event)
                data = event["params"]["data"]
                if event["method"] == "lifecycle" and data["event"] in ("completed", "failed"):
                    break
        await stream.close()
    finally:
        await wire.close()
    return seen


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_tool_calls_tool_results_and_checkpoints(
    client: LangGraphClient, transport: Transport
) -> None:
    async with client.threads.stream(assistant_id="tooler", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "2+3?"}]})
        await thread.output.with_timeout(30)
        thread_id = thread.thread_id
    history = await _history(client, thread_id, transport)

    def on(channel: str, namespace: list[str] | None = None) -> list[Any]:
        return [
            e["params"]["data"]
            for e in history
            if e["method"] == channel
            and (namespace is None or e["params"]["namespace"] == namespace)
        ]

    # The model's tool call: the bridge's own events for that message, tool_call block in.
    messages = on("messages", [])
    asked = list(messages[: messages.index({"event": "message-finish"}) + 1])
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add"}
    expected = message_to_events(AIMessage(content="", id="ask-add", tool_calls=[call]))
    assert asked == [dict(event) for event in expected]
    assert asked[0] == {"event": "message-start", "role": "ai", "id": "ask-add"}
    finished = next(m for m in asked if m["event"] == "content-block-finish")
    assert finished["content"] == {
        "type": "tool_call",
        "id": "call_add",
        "name": "add",
        "args": {"a": 2, "b": 3},
    }

    # The tool itself, on `tools`.
    tools = on("tools")
    assert tools[0] == {
        "event": "tool-started",
        "tool_call_id": "call_add",
        "tool_name": "add",
        "input": {"a": 2, "b": 3},
    }
    assert tools[1]["event"] == "tool-finished"
    assert tools[1]["tool_call_id"] == "call_add"
    assert tools[1]["output"]["content"] == "5"
    assert len(tools) == 2

    # Its result, mirrored as a `tool` message in the tool call's namespace only.
    assert all(m.get("role") != "tool" for m in messages)
    mirrored = on("messages", ["tools:call_add"])
    assert mirrored[0] == {
        "event": "message-start",
        "role": "tool",
        "id": "tool-call_add",
        "tool_call_id": "call_add",
    }
    assert mirrored[-2]["content"] == {"type": "text", "text": "5"}

    # The answer, streamed chunk by chunk: start, one text block, its deltas, finish.
    answer = messages[len(asked) :]
    assert answer[0]["event"] == "message-start"
    assert answer[0]["role"] == "ai"
    deltas = [m["delta"]["text"] for m in answer if m["event"] == "content-block-delta"]
    assert "".join(deltas) == "the sum is 5"
    assert len(deltas) > 1
    assert answer[-2] == {
        "event": "content-block-finish",
        "index": 0,
        "content": {"type": "text", "text": "the sum is 5"},
    }
    assert answer[-1]["event"] == "message-finish"

    # Checkpoints: one envelope each, chained by parent_id, steps in order.
    checkpoints = on("checkpoints", [])
    assert [c["step"] for c in checkpoints] == [-1, 0, 1, 2, 3]
    assert [c["source"] for c in checkpoints] == ["input", "loop", "loop", "loop", "loop"]
    assert "parent_id" not in checkpoints[0]
    for parent, child in itertools.pairwise(checkpoints):
        assert child["parent_id"] == parent["id"]
    state = await client.threads.get_state(thread_id)
    assert state["checkpoint"]["checkpoint_id"] == checkpoints[-1]["id"]


@pytest.mark.parametrize("mode", ["tools", "lifecycle"])
async def test_the_protocols_modes_are_refused_on_other_run_routes(
    http: httpx.AsyncClient, mode: str
) -> None:
    thread = (await http.post("/threads", json={})).json()
    for path in (f"/threads/{thread['thread_id']}/runs", "/runs/wait"):
        response = await http.post(
            path, json={"assistant_id": "tooler", "input": {}, "stream_mode": ["values", mode]}
        )
        body = assert_error(response, 422)
        assert body["detail"] == (
            f"stream_mode entries {[mode]!r} are only supported on the v2 event streaming "
            "endpoints."
        )
    # A run marked as the protocol's may stream them (as on the official server).
    marked = await http.post(
        "/runs/wait",
        json={
            "assistant_id": "tooler",
            "input": {"messages": [{"role": "user", "content": "2+3?"}]},
            "stream_mode": ["values", mode],
            "config": {"configurable": {"__event_streaming_v2": True}},
        },
    )
    assert marked.status_code == 200, marked.text
    assert marked.json()["messages"][-1]["content"] == "the sum is 5"
