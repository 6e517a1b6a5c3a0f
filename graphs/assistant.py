"""The built-in assistant graph: a supervisor with retriever, vision and critic agents.

Wiring only. Each node lives in ``agents/``; the supervisor and the critic hand
off with ``Command`` (their return annotations declare where they may go), the
retriever and vision agents report back to the supervisor.

    START → supervisor ─┬→ retriever ─┐
              ▲         ├→ vision ────┤
              │         ├→ critic ─┬──┘ (accepted / revise)
              │         │          └→ human_review (interrupt) ─┐
              └─────────┴───────────────────────────────────────┘
                        └→ END (finish)

``build()`` returns the uncompiled ``StateGraph`` so the server can compile it
with its own checkpointer and store; ``graph`` is compiled without either, for
``langgraph.json`` and ``langgraph dev``.
"""

from __future__ import annotations

from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agents.context import Context
from agents.critic import critic, human_review
from agents.retriever import retriever
from agents.state import InputState, State
from agents.supervisor import supervisor
from agents.vision import vision

__all__ = ["build", "graph"]


def build() -> StateGraph[State, Context, InputState, State]:
    """The assistant's graph, uncompiled."""
    builder = StateGraph(State, context_schema=Context, input_schema=InputState)
    builder.add_node("supervisor", supervisor)
    builder.add_node("retriever", retriever)
    builder.add_node("vision", vision)
    builder.add_node("critic", critic)
    builder.add_node("human_review", human_review)
    builder.add_edge(START, "supervisor")
    builder.add_edge("retriever", "supervisor")
    builder.add_edge("vision", "supervisor")
    return builder


graph: CompiledStateGraph[State, Context, InputState, State] = build().compile(name="assistant")
