"""`graph_host/snapshot.py`: LangGraph `StateSnapshot`s as the API's `ThreadState`."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Interrupt, PregelTask, StateSnapshot, interrupt

from server.core.encoding import dumps, to_jsonable
from server.graph_host.snapshot import (
    bounded_values,
    checkpoint_ref,
    empty_state,
    interrupts_by_task,
    snapshot_json,
    thread_snapshot,
)


def _config(checkpoint_id: str, **extra: object) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": "t-1",
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
            **extra,
        }
    }


def _snapshot(**changes: Any) -> StateSnapshot:
    base = StateSnapshot(
        values={"messages": [HumanMessage("hi", id="m-1")]},
        next=("review",),
        config=_config("c-2"),
        metadata={"step": 2, "source": "loop"},
        created_at="2025-01-01T00:00:00+00:00",
        parent_config=_config("c-1"),
        tasks=(),
        interrupts=(),
    )
    return base._replace(**changes)


def test_checkpoint_ref_needs_a_checkpoint_id() -> None:
    assert checkpoint_ref(None) is None
    assert checkpoint_ref({"configurable": {"thread_id": "t-1"}}) is None
    assert checkpoint_ref(_config("c-1")) == {
        "thread_id": "t-1",
        "checkpoint_ns": "",
        "checkpoint_id": "c-1",
    }


def test_checkpoint_ref_keeps_a_non_empty_checkpoint_map_only() -> None:
    assert "checkpoint_map" not in (checkpoint_ref(_config("c-1", checkpoint_map={})) or {})
    ref = checkpoint_ref(_config("c-1", checkpoint_map={"": "c-0"}))
    assert ref is not None
    assert ref["checkpoint_map"] == {"": "c-0"}


def test_snapshot_json_encodes_values_and_names_both_checkpoints() -> None:
    state = snapshot_json(_snapshot())
    assert set(state) == set(empty_state())
    values = state["values"]
    assert isinstance(values, dict)
    messages = values["messages"]
    assert isinstance(messages, list)
    assert isinstance(messages[0], dict)
    assert messages[0]["content"] == "hi"
    assert messages[0]["type"] == "human"
    assert state["next"] == ["review"]
    assert state["checkpoint_id"] == "c-2"
    assert state["parent_checkpoint_id"] == "c-1"
    assert state["checkpoint"] == {"thread_id": "t-1", "checkpoint_ns": "", "checkpoint_id": "c-2"}
    assert state["metadata"] == {"step": 2, "source": "loop"}
    assert state["created_at"] == "2025-01-01T00:00:00+00:00"


def test_snapshot_json_of_a_root_snapshot_has_no_parent() -> None:
    state = snapshot_json(_snapshot(parent_config=None, values=None, metadata=None))
    assert state["parent_checkpoint"] is None
    assert state["parent_checkpoint_id"] is None
    assert state["values"] == {}
    assert state["metadata"] == {}


def test_snapshot_json_tasks_show_errors_interrupts_and_subgraphs() -> None:
    pending = Interrupt(value={"question": "ok?"}, id="i-1")
    sub_snapshot = _snapshot(next=(), config=_config("s-1"), parent_config=None)
    sub_config: RunnableConfig = {
        "configurable": {"thread_id": "t-1", "checkpoint_ns": "child:abc", "checkpoint_id": "s-2"}
    }
    tasks = (
        PregelTask("task-1", "review", ("__pregel_pull", "review"), interrupts=(pending,)),
        PregelTask("task-2", "failing", ("__pregel_pull", "failing"), error=ValueError("boom")),
        PregelTask("task-3", "child", ("__pregel_pull", "child"), state=sub_snapshot),
        PregelTask("task-4", "child", ("__pregel_pull", "child"), state=sub_config),
    )
    state = snapshot_json(_snapshot(tasks=tasks, interrupts=(pending,)))
    review, failing, nested, by_config = state["tasks"]
    assert review["path"] == ["__pregel_pull", "review"]
    assert review["interrupts"] == [{"value": {"question": "ok?"}, "id": "i-1"}]
    assert review["error"] is None
    assert failing["error"] == "ValueError('boom')"
    assert nested["state"] is not None
    assert nested["state"]["checkpoint_id"] == "s-1"
    assert nested["checkpoint"] is None
    assert by_config["state"] is None
    assert by_config["checkpoint"] == sub_config["configurable"]
    assert state["interrupts"] == [{"value": {"question": "ok?"}, "id": "i-1"}]


def test_interrupts_by_task_skips_tasks_without_interrupts() -> None:
    tasks = (
        PregelTask("task-1", "a", ("__pregel_pull", "a")),
        PregelTask(
            "task-2", "b", ("__pregel_pull", "b"), interrupts=(Interrupt({1, 2}, id="i-2"),)
        ),
    )
    assert interrupts_by_task(_snapshot(tasks=tasks)) == {
        "task-2": [{"value": [1, 2], "id": "i-2"}]
    }


class _State(TypedDict):
    answer: str


def _ask(state: _State) -> _State:
    return {"answer": interrupt("approve?")}


async def test_thread_snapshot_reads_values_interrupts_and_what_remains() -> None:
    builder = StateGraph(_State)
    builder.add_node("ask", _ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-1"}}
    await graph.ainvoke({"answer": "none yet"}, config)

    values, interrupts, has_next = await thread_snapshot(graph, "t-1")

    assert values == {"answer": "none yet"}
    assert has_next is True
    [(_task_id, [pending])] = interrupts.items()
    assert pending["value"] == "approve?"
    assert pending["id"]
    first = [s async for s in graph.aget_state_history(config)][-1]
    checkpoint_id = first.config["configurable"]["checkpoint_id"]
    values, interrupts, has_next = await thread_snapshot(graph, "t-1", checkpoint_id=checkpoint_id)
    assert values == {}
    assert interrupts == {}
    assert has_next is True


def test_a_thread_row_keeps_the_keys_that_fit_its_bound() -> None:
    messages = [HumanMessage(content="x" * 100, id=str(n)) for n in range(50)]
    kept, omitted = bounded_values({"topic": "owls", "messages": messages, "n": 3}, 200)
    assert kept == {"topic": "owls", "n": 3}
    assert omitted == ["messages"]
    assert len(dumps(kept)) <= 200


def test_a_small_state_is_kept_whole() -> None:
    values = {"messages": [HumanMessage(content="hi", id="1")], "done": True}
    kept, omitted = bounded_values(values, 16_384)
    assert omitted == []
    assert kept == to_jsonable(values)


def test_a_state_that_is_not_an_object_is_kept_or_left_out_whole() -> None:
    assert bounded_values(["a", "b"], 100) == (["a", "b"], [])
    assert bounded_values(["a" * 200], 100) == (None, [""])


def test_measuring_a_long_list_stops_at_the_bound() -> None:
    class Counted:
        reads = 0

        def to_json(self) -> str:
            Counted.reads += 1
            return "item"

    kept, omitted = bounded_values({"items": [Counted() for _ in range(10_000)]}, 100)
    assert (kept, omitted) == ({}, ["items"])
    assert Counted.reads < 20
