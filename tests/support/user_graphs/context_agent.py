"""A user's graph in the style of LangGraph's templates (react-agent): a `Context` dataclass
with defaults, read by a node as `runtime.context.<field>`. Knows nothing about Trellis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


@dataclass(kw_only=True)
class Context:
    """Per-run knobs."""

    model: str = field(default="anthropic/claude-sonnet-4-5")
    """The model to answer with."""
    max_search_results: int = 10
    """How many results a search returns."""


class State(TypedDict, total=False):
    question: str
    answer: str


async def answer(state: State, runtime: Runtime[Context]) -> State:
    ctx = runtime.context
    return {
        "answer": f"{ctx.model} x{ctx.max_search_results}: {state.get('question', '')}",
    }


builder = StateGraph(State, context_schema=Context)
builder.add_node("answer", answer)
builder.add_edge(START, "answer")
builder.add_edge("answer", END)
graph = builder.compile(name="ContextAgent")
