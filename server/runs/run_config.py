"""What a claimed run hands its graph: the `RunnableConfig`, the context and the input
(pure functions).

The config layers the assistant's config, then the request's, then the keys Trellis
owns (ids, the caller's identity, the checkpoint to start from), which a request can
never override.

The context is built as the official server builds it: the request's `context` (or, when
it sent none, its `config.configurable`, `models/run.py` `create_valid_run`) over the
assistant's (`Runs.put` merges them; an assistant's context is its `config.configurable`
when it was created with that alone), always a mapping, even empty; only the fields the
graph's context schema declares are kept (`stream.py` `_filter_context_by_schema`), and
LangGraph builds the schema's dataclass or model from it, so a schema's defaults apply
when the run sent nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from server.auth.identity import AuthUser, auth_configurable
from server.core.types import Json, JsonValue, RunAssistant, RunKwargs, RunRow
from server.graph_host.registry import AnyGraph, context_keys


def build_config(run: RunRow, assistant: RunAssistant, attempt: int) -> RunnableConfig:
    """The RunnableConfig for one run: assistant config, then request config, then Trellis keys."""
    kwargs = run["kwargs"]
    base = assistant.get("config") or {}
    request = kwargs.get("config") or {}
    config: Json = {**base, **{k: v for k, v in request.items() if k != "configurable"}}
    configurable = {
        **(base.get("configurable") or {}),
        # The official server mirrors context into configurable (`create_valid_run`,
        # `Assistants.put`), so graphs that read knobs from `configurable` still see them.
        **(assistant.get("context") or {}),
        **(request.get("configurable") or {}),
        **(kwargs.get("context") or {}),
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


def run_context(run: RunRow, assistant: RunAssistant) -> Json:
    """The run's context before the graph is known: the assistant's, then the request's."""
    kwargs = run["kwargs"]
    request = kwargs.get("context") or (kwargs.get("config") or {}).get("configurable") or {}
    # An assistant created with `config.configurable` only has that as its context (the
    # official `Assistants.put` keeps the two in step).
    base = assistant.get("context") or (assistant.get("config") or {}).get("configurable") or {}
    return {**base, **request}


def fit_context(graph: AnyGraph, context: Json, owner: str) -> Json:
    """The context the graph runs with: only its schema's fields (all of it when the graph
    declares none), and `owner` set by Trellis (never what a client claims) if it has one."""
    keys = context_keys(graph)
    if not keys:
        return dict(context)
    fitted = {key: value for key, value in context.items() if key in keys}
    if "owner" in keys:
        fitted["owner"] = owner
    return fitted


@dataclass(frozen=True)
class RunUser:
    """A run's caller as a graph factory's `ServerRuntime.user` sees it (langgraph_sdk's
    `BaseUser` protocol: attributes, and mapping access to the same fields)."""

    identity: str
    display_name: str
    is_authenticated: bool
    permissions: Sequence[str]

    @classmethod
    def of(cls, run: RunRow) -> RunUser:
        """The user Trellis records for the run (never what the client claims)."""
        user: AuthUser = auth_configurable(run)["langgraph_auth_user"]
        return cls(
            user["identity"],
            user["display_name"],
            user["is_authenticated"],
            tuple(user.get("permissions") or ()),
        )

    def __getitem__(self, key: str) -> object:
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in {f.name for f in fields(self)}

    def __iter__(self) -> Iterator[str]:
        return iter(f.name for f in fields(self))


TRELLIS_KEYS = frozenset(
    {"thread_id", "run_id", "assistant_id", "graph_id", "checkpoint_id", "checkpoint_ns"}
)
"""`configurable` keys Trellis sets itself (with `user_id` and `langgraph_auth_*`)."""


def drop_unfitted(config: RunnableConfig, context: Json, fitted: Json) -> None:
    """Make the mirrored context in `configurable` agree with what the graph runs with: keys
    the schema left out are removed (as the official `astream_state` does), keys Trellis
    overrode (`owner`) take Trellis' value. Keys no longer holding the mirrored value, and
    Trellis' own, are left alone."""
    configurable = config.get("configurable") or {}
    for key, value in context.items():
        if (
            key in TRELLIS_KEYS
            or key.startswith("langgraph_auth_")
            or key == "user_id"
            or key not in configurable
            or configurable[key] != value
        ):
            continue
        if key in fitted:
            configurable[key] = fitted[key]
        else:
            del configurable[key]


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
