"""The trivial 2-node graph the benchmarks run."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    text: str
    hops: int


def first(state: State) -> State:
    return {"hops": state.get("hops", 0) + 1}


def second(state: State) -> State:
    return {"text": state.get("text", "") + "!", "hops": state.get("hops", 0) + 1}


builder = StateGraph(State)
builder.add_node("first", first)
builder.add_node("second", second)
builder.add_edge(START, "first")
builder.add_edge("first", "second")
builder.add_edge("second", END)
graph = builder.compile()
