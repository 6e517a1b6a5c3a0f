"""What a claimed run hands its graph: the `RunnableConfig` and the input (pure functions).

The config layers the assistant's config, then the request's, then the keys Trellis
owns (ids, the caller's identity, the checkpoint to start from), which a request can
never override.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from server.auth.identity import auth_configurable
from server.core.types import Json, JsonValue, RunAssistant, RunKwargs, RunRow


def build_config(run: RunRow, assistant: RunAssistant, attempt: int) -> RunnableConfig:
    """The RunnableConfig for one run: assistant config, then request config, then Trellis keys."""
    kwargs = run["kwargs"]
    base = assistant.get("config") or {}
    request = kwargs.get("config") or {}
    config: Json = {**base, **{k: v for k, v in request.items() if k != "configurable"}}
    configurable = {
        **(base.get("configurable") or {}),
        **(request.get("configurable") or {}),
        "thread_id": str(run["thread_id"]),
        "run_id": str(run["run_id"]),
        "assistant_id": str(assistant["assistant_id"]),
        "graph_id": assistant["graph_id"],
        **auth_configurable(run),  # user_id and langgraph_auth_*, never from the request
    }
    checkpoint = kwargs.get("checkpoint") or {}
    checkpoint_id = kwargs.get("checkpoint_id") or checkpoint.get("checkpoint_id")
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
        configurable["checkpoint_ns"] = checkpoint.get("checkpoint_ns", "")
    config["configurable"] = configurable
    config["metadata"] = {
        **(base.get("metadata") or {}),
        **(request.get("metadata") or {}),
        **(run.get("metadata") or {}),
        "run_id": str(run["run_id"]),
        "thread_id": str(run["thread_id"]),
        "assistant_id": str(assistant["assistant_id"]),
        "graph_id": assistant["graph_id"],
        "run_attempt": attempt,
    }
    config["run_id"] = run["run_id"]
    return cast(RunnableConfig, config)


def graph_input(kwargs: RunKwargs) -> JsonValue | Command[str]:
    """The run's input: plain input, or a `Command` built from `command`."""
    command = kwargs.get("command")
    if not command:
        return kwargs.get("input")
    goto = command.get("goto")
    return Command(
        resume=command.get("resume"),
        update=command.get("update"),
        # A node name or a list of them, as the client sent it; LangGraph checks them.
        goto=cast("str | Sequence[str]", goto) if goto is not None else (),
    )
