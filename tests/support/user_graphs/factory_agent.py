"""A user's graph factory taking `(config, runtime: ServerRuntime)` and returning an async
context manager, as the official server allows: the graph is built per access, with the
access (`runtime.access_context`) and, when a run executes, the run's context. Entries and
exits are appended to the file named by `FACTORY_LOG`, so a test sees each access."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from langgraph_sdk.runtime import ServerRuntime


@dataclass
class Context:
    greeting: str = "hello"


class State(TypedDict, total=False):
    name: str
    said: str
    built_for: str
    built_with: str
    built_by: str


def _log(line: str) -> None:
    with Path(os.environ["FACTORY_LOG"]).open("a") as out:
        out.write(line + "\n")


@contextlib.asynccontextmanager
async def make_graph(config: RunnableConfig, runtime: ServerRuntime) -> AsyncIterator[Pregel]:
    access = runtime.access_context
    execution = runtime.execution_runtime
    built_with = repr(execution.context) if execution is not None else "-"
    built_by = runtime.user.identity if runtime.user is not None else "-"
    _log(f"enter {access} {config['configurable'].get('graph_id', '-')}")

    def respond(state: State) -> State:
        return {
            "said": f"{state.get('name', '?')}",
            "built_for": access,
            "built_with": built_with,
            "built_by": built_by,
        }

    builder = StateGraph(State, context_schema=Context)
    builder.add_node("respond", respond)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    try:
        yield builder.compile()
    finally:
        _log(f"exit {access}")
