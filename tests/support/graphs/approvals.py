"""Graphs that know nothing about Trellis, for the approval, store and Studio tests.

- `gate`: asks `state["request"]` through `interrupt()` `asks` times in one node, then records
  the answers (an interrupt value may carry `expires_in_seconds` or `expires_at`).
- `memo`: writes and reads LangGraph's store from inside a node (run-time store scoping).
- `studio`: a conditional edge into a compiled subgraph that has its own conditional edge
  and an interrupt, for drawings, subgraph state and time travel.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


def _append(left: list[Any], right: list[Any]) -> list[Any]:
    return [*left, *right]


# gate ----------------------------------------------------------------------------------------


class GateState(TypedDict, total=False):
    request: dict[str, Any]
    asks: int
    answers: Annotated[list[Any], _append]
    log: Annotated[list[str], _append]


def ask(state: GateState) -> GateState:
    request = state.get("request") or {"question": "Go ahead?"}
    answers = [interrupt({**request, "round": n}) for n in range(int(state.get("asks", 1)))]
    return {"answers": answers, "log": ["ask"]}


def done(state: GateState) -> GateState:
    return {"log": ["done"]}


gate_builder = StateGraph(GateState)
gate_builder.add_node("ask", ask)
gate_builder.add_node("done", done)
gate_builder.add_edge(START, "ask")
gate_builder.add_edge("ask", "done")
gate_builder.add_edge("done", END)
gate = gate_builder.compile()


# memo ----------------------------------------------------------------------------------------


class MemoState(TypedDict, total=False):
    key: str
    text: str
    seen: list[str]


async def remember(state: MemoState) -> MemoState:
    store = get_store()
    await store.aput(("memos",), state["key"], {"text": state.get("text", "")})
    found = await store.asearch(("memos",), limit=100)
    return {"seen": sorted(item.key for item in found)}


memo_builder = StateGraph(MemoState)
memo_builder.add_node("remember", remember)
memo_builder.add_edge(START, "remember")
memo_builder.add_edge("remember", END)
memo = memo_builder.compile()


# studio --------------------------------------------------------------------------------------


class StudioState(TypedDict, total=False):
    n: int
    path: Annotated[list[str], _append]
    verdict: str


class InnerState(TypedDict, total=False):
    n: int
    inner_path: Annotated[list[str], _append]
    verdict: str


def check(state: InnerState) -> InnerState:
    return {"inner_path": ["check"]}


def route_check(state: InnerState) -> Literal["confirm", "skip"]:
    return "confirm" if state.get("n", 0) > 1 else "skip"


def confirm(state: InnerState) -> InnerState:
    answer = interrupt({"question": f"Confirm n={state.get('n')}?"})
    return {"inner_path": ["confirm"], "verdict": str(answer)}


def skip(state: InnerState) -> InnerState:
    return {"inner_path": ["skip"], "verdict": "skipped"}


inner_builder = StateGraph(InnerState)
inner_builder.add_node("check", check)
inner_builder.add_node("confirm", confirm)
inner_builder.add_node("skip", skip)
inner_builder.add_edge(START, "check")
inner_builder.add_conditional_edges("check", route_check)
inner_builder.add_edge("confirm", END)
inner_builder.add_edge("skip", END)
inner = inner_builder.compile()


def plan(state: StudioState) -> StudioState:
    return {"path": ["plan"]}


def route_plan(state: StudioState) -> Literal["inner", "finish"]:
    return "inner" if state.get("n", 0) > 0 else "finish"


def finish(state: StudioState) -> StudioState:
    return {"path": ["finish"]}


studio_builder = StateGraph(StudioState)
studio_builder.add_node("plan", plan)
studio_builder.add_node("inner", inner)
studio_builder.add_node("finish", finish)
studio_builder.add_edge(START, "plan")
studio_builder.add_conditional_edges("plan", route_plan)
studio_builder.add_edge("inner", "finish")
studio_builder.add_edge("finish", END)
studio = studio_builder.compile()
