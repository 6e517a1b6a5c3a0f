"""More graphs that know nothing about Trellis: slow steps, a streaming chat model, a tool
call, a subgraph, and a conditional edge. Used by the integration tests."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode


def _append(left: list[str], right: list[str]) -> list[str]:
    return [*left, *right]


# slow: s1 -> s2 -> s3 -> s4, each sleeping `delay` seconds ---------------------------------


class SlowState(TypedDict, total=False):
    delay: float
    trace: str
    """A file each step appends `<node>` to when it starts: executions seen from outside."""
    tags: Annotated[list[str], _append]
    log: Annotated[list[str], _append]


SLOW_STEPS = ("s1", "s2", "s3", "s4")


def _record(trace: Path, name: str) -> None:
    with trace.open("a") as fh:
        fh.write(f"{name}\n")


def _slow_step(name: str) -> Any:
    async def step(state: SlowState) -> SlowState:
        trace = state.get("trace")
        if trace:
            await asyncio.to_thread(_record, Path(trace), name)
        await asyncio.sleep(float(state.get("delay", 0.2)))
        return {"log": [name]}

    step.__name__ = name
    return step


slow_builder = StateGraph(SlowState)
for _name in SLOW_STEPS:
    slow_builder.add_node(_name, _slow_step(_name))
slow_builder.add_edge(START, SLOW_STEPS[0])
for _a, _b in pairwise(SLOW_STEPS):
    slow_builder.add_edge(_a, _b)
slow_builder.add_edge(SLOW_STEPS[-1], END)
slow = slow_builder.compile()


# chat: one node calling a fake chat model that streams word by word -------------------------


async def model(state: MessagesState) -> dict[str, Any]:
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="hello there friend")]))
    reply = await llm.ainvoke(state["messages"])
    return {"messages": [reply]}


chat_builder = StateGraph(MessagesState)
chat_builder.add_node("model", model)
chat_builder.add_edge(START, "model")
chat_builder.add_edge("model", END)
chat = chat_builder.compile()


# tooler: a model turn asking for a tool, the tool (a ToolNode), then the answer ---------------


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def ask_tool(state: MessagesState) -> dict[str, Any]:
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add"}
    return {"messages": [AIMessage(content="", id="ask-add", tool_calls=[call])]}


async def answer(state: MessagesState) -> dict[str, Any]:
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="the sum is 5")]))
    return {"messages": [await llm.ainvoke(state["messages"])]}


tooler_builder = StateGraph(MessagesState)
tooler_builder.add_node("ask", ask_tool)
tooler_builder.add_node("tools", ToolNode([add]))
tooler_builder.add_node("answer", answer)
tooler_builder.add_edge(START, "ask")
tooler_builder.add_edge("ask", "tools")
tooler_builder.add_edge("tools", "answer")
tooler_builder.add_edge("answer", END)
tooler = tooler_builder.compile()


# nested: a parent graph with a compiled subgraph as its node `child` -----------------------


class NestedState(TypedDict, total=False):
    path: Annotated[list[str], _append]


def inner(state: NestedState) -> NestedState:
    return {"path": ["inner"]}


child_builder = StateGraph(NestedState)
child_builder.add_node("inner", inner)
child_builder.add_edge(START, "inner")
child_builder.add_edge("inner", END)
child_graph = child_builder.compile()


def outer(state: NestedState) -> NestedState:
    return {"path": ["outer"]}


nested_builder = StateGraph(NestedState)
nested_builder.add_node("outer", outer)
nested_builder.add_node("child", child_graph)
nested_builder.add_edge(START, "outer")
nested_builder.add_edge("outer", "child")
nested_builder.add_edge("child", END)
nested = nested_builder.compile()


# branch: a conditional edge ------------------------------------------------------------------


class BranchState(TypedDict, total=False):
    go_left: bool
    took: str


def decide(state: BranchState) -> BranchState:
    return {}


def left(state: BranchState) -> BranchState:
    return {"took": "left"}


def right(state: BranchState) -> BranchState:
    return {"took": "right"}


def _route(state: BranchState) -> str:
    return "left" if state.get("go_left") else "right"


branch_builder = StateGraph(BranchState)
branch_builder.add_node("decide", decide)
branch_builder.add_node("left", left)
branch_builder.add_node("right", right)
branch_builder.add_edge(START, "decide")
branch_builder.add_conditional_edges("decide", _route, ["left", "right"])
branch_builder.add_edge("left", END)
branch_builder.add_edge("right", END)
branch = branch_builder.compile()
