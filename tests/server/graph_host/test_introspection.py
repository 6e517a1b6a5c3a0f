"""`graph_host/introspection.py`: a graph's drawing, JSON Schemas and subgraphs."""

import typing
from typing import NotRequired

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import is_typeddict

from server.graph_host.introspection import _compatible, draw, schemas, subgraphs
from server.graph_host.registry import AnyGraph


class State(typing.TypedDict):
    """The state of the test graph (a `typing.TypedDict`, which pydantic refuses on 3.11)."""

    question: str
    answer: NotRequired[str]


class Input(typing.TypedDict):
    question: str


def _answer(state: State) -> State:
    return {"question": state["question"], "answer": "42"}


def _graph() -> AnyGraph:
    child = StateGraph(State)
    child.add_node("answer", _answer)
    child.add_edge(START, "answer")
    child.add_edge("answer", END)
    parent = StateGraph(State, input_schema=Input)
    parent.add_node("child", child.compile())
    parent.add_edge(START, "child")
    parent.add_edge("child", END)
    return parent.compile(checkpointer=InMemorySaver())


def test_compatible_rebuilds_a_typing_typeddict_with_the_same_keys() -> None:
    copy = _compatible(State)
    assert copy is not State
    assert isinstance(copy, type)
    assert is_typeddict(copy)
    assert copy.__name__ == "State"
    assert copy.__doc__ == State.__doc__
    assert getattr(copy, "__required_keys__") == frozenset({"question"})  # noqa: B009
    assert getattr(copy, "__optional_keys__") == frozenset({"answer"})  # noqa: B009


def test_compatible_rewrites_typeddicts_inside_generic_types() -> None:
    converted = _compatible(list[State] | None)
    [inner, none] = typing.get_args(converted)
    assert none is type(None)
    [item] = typing.get_args(inner)
    assert is_typeddict(item)
    assert item is not State
    assert _compatible(int) is int


def test_schemas_name_the_graph_first_and_describe_input_and_state() -> None:
    found = schemas(_graph(), "qa")
    assert list(found) == [
        "graph_id",
        "input_schema",
        "output_schema",
        "state_schema",
        "config_schema",
        "context_schema",
    ]
    assert found["graph_id"] == "qa"
    input_schema, state_schema = found["input_schema"], found["state_schema"]
    assert input_schema is not None
    assert state_schema is not None
    assert set(typing.cast(dict[str, object], input_schema["properties"])) == {"question"}
    assert set(typing.cast(dict[str, object], state_schema["properties"])) == {
        "question",
        "answer",
    }
    assert state_schema["required"] == ["question"]


async def test_draw_lists_nodes_and_edges() -> None:
    drawing = await draw(_graph(), xray=False)
    nodes = typing.cast(list[dict[str, object]], drawing["nodes"])
    assert {node["id"] for node in nodes} == {"__start__", "child", "__end__"}
    assert drawing["edges"]
    expanded = await draw(_graph(), xray=True)
    ids = {node["id"] for node in typing.cast(list[dict[str, object]], expanded["nodes"])}
    assert "child:answer" in ids


async def test_subgraphs_are_keyed_by_namespace() -> None:
    found = await subgraphs(_graph(), namespace=None, recurse=False)
    assert list(found) == ["child"]
    assert found["child"]["graph_id"] == "child"
    state_schema = found["child"]["state_schema"]
    assert state_schema is not None
    assert "answer" in typing.cast(dict[str, object], state_schema["properties"])
