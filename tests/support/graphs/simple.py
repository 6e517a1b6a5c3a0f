"""Graphs that know nothing about Trellis, used by the integration tests."""

from __future__ import annotations

from typing import Annotated, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


def _append(left: list[str], right: list[str]) -> list[str]:
    return [*left, *right]


class State(TypedDict, total=False):
    topic: str
    draft: str
    approved: bool
    feedback: str
    log: Annotated[list[str], _append]


def draft(state: State) -> State:
    get_stream_writer()({"progress": "drafting"})
    if state.get("topic") == "explode":
        raise ValueError("the topic exploded")
    return {"draft": f"Draft about {state['topic']}", "log": ["draft"]}


def review(state: State) -> State:
    answer = interrupt({"question": "Approve this draft?", "draft": state["draft"]})
    if "decision" in answer:  # answered through /approvals: {"decision", "value", "comment"}
        edited = answer["decision"] == "edit" and isinstance(answer.get("value"), str)
        return {
            "approved": answer["decision"] in ("approve", "edit"),
            "feedback": answer.get("comment") or "",
            "log": ["review"],
            **({"draft": answer["value"]} if edited else {}),
        }
    return {
        "approved": bool(answer.get("approved")),
        "feedback": answer.get("feedback", ""),
        "log": ["review"],
    }


def publish(state: State) -> State:
    return {"log": ["publish"]}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_node("publish", publish)
builder.add_edge(START, "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", "publish")
builder.add_edge("publish", END)
approval = builder.compile()


class EchoState(TypedDict, total=False):
    text: str
    steps: Annotated[list[str], _append]


def first(state: EchoState) -> EchoState:
    return {"steps": ["first"]}


def second(state: EchoState) -> EchoState:
    return {"text": state.get("text", "") + "!", "steps": ["second"]}


echo_builder = StateGraph(EchoState)
echo_builder.add_node("first", first)
echo_builder.add_node("second", second)
echo_builder.add_edge(START, "first")
echo_builder.add_edge("first", "second")
echo_builder.add_edge("second", END)
echo = echo_builder  # an uncompiled StateGraph: Trellis compiles it


def make_echo() -> object:
    """A factory, as langgraph.json allows."""
    return echo_builder.compile()
