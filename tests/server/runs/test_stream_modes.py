"""Every stream mode, through the official SDK, with the payloads the official server sends."""

from __future__ import annotations

from typing import Any

from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

CHAT_INPUT = {"messages": [{"role": "user", "content": "hi"}]}
TOKENS = ["hello", " ", "there", " ", "friend"]


async def _stream(
    client: LangGraphClient, graph: str, payload: Any, **kwargs: Any
) -> list[StreamPart]:
    tid = (await client.threads.create())["thread_id"]
    parts = [p async for p in client.runs.stream(tid, graph, input=payload, **kwargs)]
    assert parts[0].event == "metadata"
    assert set(parts[0].data) >= {"run_id", "attempt"}
    assert parts[0].data["attempt"] == 1
    return parts[1:]


async def test_values(client: LangGraphClient) -> None:
    parts = await _stream(client, "echo", {"text": "v"}, stream_mode="values")
    assert [p.event for p in parts] == ["values"] * 3
    assert [p.data for p in parts] == [
        {"text": "v", "steps": []},
        {"text": "v", "steps": ["first"]},
        {"text": "v!", "steps": ["first", "second"]},
    ]


async def test_values_show_the_interrupt(client: LangGraphClient) -> None:
    parts = await _stream(client, "approval", {"topic": "cats"}, stream_mode="values")
    last = parts[-1].data
    assert last["draft"] == "Draft about cats"
    assert last["__interrupt__"][0]["value"]["question"] == "Approve this draft?"
    assert "id" in last["__interrupt__"][0]


async def test_updates(client: LangGraphClient) -> None:
    parts = await _stream(client, "echo", {"text": "u"}, stream_mode="updates")
    assert [(p.event, p.data) for p in parts] == [
        ("updates", {"first": {"steps": ["first"]}}),
        ("updates", {"second": {"text": "u!", "steps": ["second"]}}),
    ]


async def test_custom(client: LangGraphClient) -> None:
    parts = await _stream(client, "approval", {"topic": "cats"}, stream_mode="custom")
    assert [(p.event, p.data) for p in parts] == [("custom", {"progress": "drafting"})]


async def test_several_modes_interleave_in_order(client: LangGraphClient) -> None:
    """Same order as the official capture stream_values_updates_custom_interrupt.sse."""
    parts = await _stream(
        client, "approval", {"topic": "cats"}, stream_mode=["values", "updates", "custom"]
    )
    assert [p.event for p in parts] == [
        "values",
        "custom",
        "updates",
        "values",
        "updates",
        "values",
    ]
    assert parts[2].data == {"draft": {"draft": "Draft about cats", "log": ["draft"]}}
    assert "__interrupt__" in parts[4].data


async def test_debug(client: LangGraphClient) -> None:
    parts = await _stream(client, "echo", {"text": "d"}, stream_mode="debug")
    assert {p.event for p in parts} == {"debug"}
    kinds = [p.data["type"] for p in parts]
    assert set(kinds) == {"checkpoint", "task", "task_result"}
    for part in parts:
        assert {"type", "step", "timestamp", "payload"} <= set(part.data)
    checkpoints = [p.data["payload"] for p in parts if p.data["type"] == "checkpoint"]
    assert len(checkpoints) == 4
    for payload in checkpoints:
        # The official server adds plain checkpoint references to debug checkpoints.
        assert set(payload["checkpoint"]) == {"checkpoint_id", "thread_id", "checkpoint_ns"}
        assert "parent_checkpoint" in payload
    assert checkpoints[0]["parent_checkpoint"] is None
    assert checkpoints[1]["parent_checkpoint"] == checkpoints[0]["checkpoint"]
    tasks = [p.data["payload"]["name"] for p in parts if p.data["type"] == "task"]
    assert tasks == ["first", "second"]


async def test_tasks(client: LangGraphClient) -> None:
    parts = await _stream(client, "echo", {"text": "t"}, stream_mode="tasks")
    assert {p.event for p in parts} == {"tasks"}
    started = [p.data for p in parts if "input" in p.data]
    finished = [p.data for p in parts if "result" in p.data]
    assert [t["name"] for t in started] == ["first", "second"]
    assert [t["name"] for t in finished] == ["first", "second"]
    assert started[0]["id"] == finished[0]["id"]
    assert finished[1]["result"] == {"text": "t!", "steps": ["second"]}
    assert all(t["error"] is None for t in finished)


async def test_checkpoints(client: LangGraphClient) -> None:
    parts = await _stream(client, "echo", {"text": "c"}, stream_mode="checkpoints")
    assert [p.event for p in parts] == ["checkpoints"] * 4
    for part in parts:
        assert {"config", "parent_config", "values", "metadata", "next", "tasks"} <= set(part.data)
    assert [p.data["metadata"]["step"] for p in parts] == [-1, 0, 1, 2]
    assert [p.data["next"] for p in parts] == [["__start__"], ["first"], ["second"], []]
    assert parts[-1].data["values"] == {"text": "c!", "steps": ["first", "second"]}
    assert parts[0].data["parent_config"] is None
    assert (
        parts[1].data["parent_config"]["configurable"]["checkpoint_id"]
        == parts[0].data["config"]["configurable"]["checkpoint_id"]
    )


async def test_events(client: LangGraphClient) -> None:
    parts = await _stream(client, "echo", {"text": "e"}, stream_mode="events")
    assert {p.event for p in parts} == {"events"}
    names = [p.data["event"] for p in parts]
    assert names[0] == "on_chain_start"
    assert names[-1] == "on_chain_end"
    assert "on_chain_stream" in names
    for part in parts:
        assert {"event", "run_id", "name", "data"} <= set(part.data)
    nodes = {p.data["name"] for p in parts if p.data["event"] == "on_chain_start"}
    assert {"first", "second"} <= nodes
    assert parts[-1].data["data"]["output"] == {"text": "e!", "steps": ["first", "second"]}


async def test_events_with_another_mode(client: LangGraphClient) -> None:
    parts = await _stream(client, "echo", {"text": "e"}, stream_mode=["events", "updates"])
    assert {p.event for p in parts} == {"events", "updates"}
    assert [p.data for p in parts if p.event == "updates"] == [
        {"first": {"steps": ["first"]}},
        {"second": {"text": "e!", "steps": ["second"]}},
    ]


async def test_messages_tuple(client: LangGraphClient) -> None:
    parts = await _stream(client, "chat", CHAT_INPUT, stream_mode="messages-tuple")
    assert {p.event for p in parts} == {"messages"}
    chunks = []
    for part in parts:
        assert isinstance(part.data, list)
        assert len(part.data) == 2
        chunk, metadata = part.data
        assert chunk["type"] == "AIMessageChunk"
        assert metadata["langgraph_node"] == "model"
        assert metadata["graph_id"] == "chat"
        assert "thread_id" in metadata
        assert "run_id" in metadata
        chunks.append(chunk)
    assert [c["content"] for c in chunks] == TOKENS
    assert len({c["id"] for c in chunks}) == 1


async def test_messages(client: LangGraphClient) -> None:
    parts = await _stream(client, "chat", CHAT_INPUT, stream_mode="messages")
    assert parts[0].event == "messages/metadata"
    [(message_id, meta)] = parts[0].data.items()
    assert meta["metadata"]["langgraph_node"] == "model"
    partials = [p for p in parts[1:] if p.event == "messages/partial"]
    assert {p.event for p in parts[1:]} <= {"messages/partial", "messages/complete"}
    contents = []
    for part in partials:
        [message] = part.data
        assert message["id"] == message_id
        assert message["type"] == "ai"
        contents.append(message["content"])
    # Each partial carries the whole message so far.
    assert contents == ["hello", "hello ", "hello there", "hello there ", "hello there friend"]


async def test_messages_and_tuple_together(client: LangGraphClient) -> None:
    parts = await _stream(
        client, "chat", CHAT_INPUT, stream_mode=["messages", "messages-tuple", "values"]
    )
    events = [p.event for p in parts]
    assert events.count("messages") == len(TOKENS)
    assert events.count("messages/partial") == len(TOKENS)
    assert events.count("messages/metadata") == 1
    assert parts[-1].event == "values"
    assert [m["content"] for m in parts[-1].data["messages"]] == ["hi", "hello there friend"]


async def test_subgraphs(client: LangGraphClient) -> None:
    parts = await _stream(
        client, "nested", {"path": []}, stream_mode=["updates", "values"], stream_subgraphs=True
    )
    names = [p.event for p in parts]
    sub_events = [n for n in names if "|" in n]
    assert sub_events, names
    modes = {n.split("|", 1)[0] for n in sub_events}
    assert modes == {"updates", "values"}
    namespaces = {n.split("|", 1)[1] for n in sub_events}
    assert len(namespaces) == 1
    [namespace] = namespaces
    assert namespace.startswith("child:")
    inner_updates = [p.data for p in parts if p.event == f"updates|{namespace}"]
    assert inner_updates == [{"inner": {"path": ["inner"]}}]
    top_updates = [p.data for p in parts if p.event == "updates"]
    assert [list(u) for u in top_updates] == [["outer"], ["child"]]
    assert parts[-1].event == "values"
    # The subgraph returns its whole state, which the parent's reducer appends.
    assert parts[-1].data == {"path": ["outer", "outer", "inner"]}


async def test_no_subgraph_events_without_stream_subgraphs(client: LangGraphClient) -> None:
    parts = await _stream(client, "nested", {"path": []}, stream_mode=["updates", "values"])
    assert all("|" not in p.event for p in parts)
    assert [list(p.data) for p in parts if p.event == "updates"] == [["outer"], ["child"]]


async def test_subgraph_state(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "nested", input={"path": []}, interrupt_before=["child"])
    state = await client.threads.get_state(tid, subgraphs=True)
    assert state["next"] == ["child"]
    assert state["tasks"][0]["name"] == "child"
