"""The most common user graph: a `messages` list under `add_messages`, one node.

It knows nothing about Trellis. Each turn the caller sends one user message of about 1 KB
and the node answers with one AI message of about 1 KB, so a thread grows by ~2 KB a turn.
"""

from __future__ import annotations

import random
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

REPLY_BYTES = 1024


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    """The conversation; each turn appends a user and an AI message."""


def filler(seed: str, size: int = REPLY_BYTES) -> str:
    """`size` characters of hex that differ per seed, so that no message compresses away."""
    return random.Random(seed).randbytes(size // 2).hex()


def reply(text: str, turn: int) -> str:
    """About `REPLY_BYTES` of text in answer to `text`."""
    return filler(f"{turn}:{text[:64]}")


def answer(state: State) -> dict[str, list[AnyMessage]]:
    """One AI message of about 1 KB in answer to the last message."""
    last = state["messages"][-1]
    return {"messages": [AIMessage(reply(str(last.content), len(state["messages"])))]}


builder = StateGraph(State)
builder.add_node("answer", answer)
builder.add_edge(START, "answer")
builder.add_edge("answer", END)
graph = builder.compile()
