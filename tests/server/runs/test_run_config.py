"""build_config, run_context, fit_context and graph_input: what a claimed run hands its
graph, without a database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from langgraph_sdk.auth.types import BaseUser
from typing_extensions import TypedDict

from server.core.types import RunAssistant, RunKwargs, RunRow
from server.graph_host.registry import AnyGraph
from server.runs.run_config import (
    RunUser,
    build_config,
    drop_unfitted,
    fit_context,
    graph_input,
    run_context,
)

RUN_ID = uuid.UUID("00000000-0000-7000-8000-000000000001")
THREAD_ID = uuid.UUID("00000000-0000-7000-8000-000000000002")
ASSISTANT_ID = "00000000-0000-7000-8000-000000000003"


def run_row(owner: str = "alice", **kwargs: object) -> RunRow:
    """A claimed run's row, with the request keys given as `kwargs`."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    return cast(
        RunRow,
        {
            "run_id": RUN_ID,
            "thread_id": THREAD_ID,
            "assistant_id": uuid.UUID(ASSISTANT_ID),
            "owner": owner,
            "status": "running",
            "metadata": {"from": "run", "shared": "run"},
            "kwargs": {"assistant_id": ASSISTANT_ID, "graph_id": "echo", **kwargs},
            "multitask_strategy": "enqueue",
            "created_at": now,
            "updated_at": now,
            "attempt": 1,
            "lease_epoch": 1,
        },
    )


def assistant(**config: object) -> RunAssistant:
    return {
        "assistant_id": ASSISTANT_ID,
        "graph_id": "echo",
        "config": dict(config),
        "context": {},
        "metadata": {},
    }


def test_request_config_overrides_the_assistants_and_trellis_keys_override_both() -> None:
    base = assistant(
        recursion_limit=5,
        tags=["assistant"],
        configurable={"model": "small", "temperature": 0, "thread_id": "not-this"},
        metadata={"from": "assistant", "shared": "assistant"},
    )
    run = run_row(
        config={
            "tags": ["request"],
            "configurable": {
                "model": "large",
                "run_id": "spoofed",
                "user_id": "mallory",
                "langgraph_auth_user_id": "mallory",
            },
            "metadata": {"from": "request", "extra": 1},
        }
    )
    config = build_config(run, base, attempt=3)

    assert config["recursion_limit"] == 5
    assert config["tags"] == ["request"]
    configurable = config["configurable"]
    assert configurable["model"] == "large"
    assert configurable["temperature"] == 0
    assert configurable["thread_id"] == str(THREAD_ID)
    assert configurable["run_id"] == str(RUN_ID)
    assert configurable["assistant_id"] == ASSISTANT_ID
    assert configurable["graph_id"] == "echo"
    assert configurable["user_id"] == "alice"
    assert configurable["langgraph_auth_user_id"] == "alice"
    assert "checkpoint_id" not in configurable
    # Run metadata wins over the request's, which wins over the assistant's; ids last.
    assert config["metadata"] == {
        "from": "run",
        "shared": "run",
        "extra": 1,
        "run_id": str(RUN_ID),
        "thread_id": str(THREAD_ID),
        "assistant_id": ASSISTANT_ID,
        "graph_id": "echo",
        "run_attempt": 3,
    }
    assert config["run_id"] == RUN_ID


def test_the_callers_identity_comes_from_the_run_not_the_request() -> None:
    user = {"identity": "alice", "display_name": "Alice", "is_authenticated": True}
    configurable = build_config(
        run_row(auth_user={**user, "permissions": ["read"]}), assistant(), 1
    )["configurable"]
    assert configurable["langgraph_auth_user"]["display_name"] == "Alice"
    assert configurable["langgraph_auth_permissions"] == ["read"]

    # An identity recorded for someone else is not trusted: the owner, unauthenticated.
    forged = build_config(
        run_row(auth_user={"identity": "mallory", "permissions": ["admin"]}), assistant(), 1
    )["configurable"]
    assert forged["langgraph_auth_user"]["identity"] == "alice"
    assert forged["langgraph_auth_permissions"] == []


def test_a_run_from_a_checkpoint_starts_there() -> None:
    by_ref = build_config(
        run_row(checkpoint={"checkpoint_id": "c1", "checkpoint_ns": "child"}), assistant(), 1
    )
    assert by_ref["configurable"]["checkpoint_id"] == "c1"
    assert by_ref["configurable"]["checkpoint_ns"] == "child"

    by_id = build_config(
        run_row(checkpoint_id="c2", checkpoint={"checkpoint_id": "c1"}), assistant(), 1
    )
    assert by_id["configurable"]["checkpoint_id"] == "c2"
    assert by_id["configurable"]["checkpoint_ns"] == ""


def test_input_is_the_plain_input_without_a_command() -> None:
    assert graph_input(cast(RunKwargs, {"input": {"text": "hi"}})) == {"text": "hi"}
    assert graph_input(cast(RunKwargs, {})) is None
    assert graph_input(cast(RunKwargs, {"input": [1], "command": {}})) == [1]


def test_a_command_becomes_a_langgraph_command() -> None:
    resume = graph_input(cast(RunKwargs, {"command": {"resume": {"approved": True}}}))
    assert isinstance(resume, Command)
    assert resume.resume == {"approved": True}
    assert resume.update is None
    assert resume.goto == ()

    jump = graph_input(cast(RunKwargs, {"command": {"goto": "second", "update": {"n": 1}}}))
    assert isinstance(jump, Command)
    assert jump.goto == "second"
    assert jump.update == {"n": 1}
    assert jump.resume is None


@dataclass
class Knobs:
    model: str = "small"
    owner: str = ""


class _S(TypedDict, total=False):
    x: int


def _graph(context_schema: type | None) -> AnyGraph:
    builder = StateGraph(_S, context_schema=context_schema)
    builder.add_node("n", lambda state: {})
    builder.add_edge(START, "n")
    builder.add_edge("n", END)
    return builder.compile()


def test_run_context_is_the_requests_over_the_assistants_and_always_a_mapping() -> None:
    owned = assistant()
    owned["context"] = {"model": "big", "top_k": 2}
    assert run_context(run_row(), assistant()) == {}
    assert run_context(run_row(context={}), assistant()) == {}
    assert run_context(run_row(), owned) == {"model": "big", "top_k": 2}
    assert run_context(run_row(context={"model": "huge"}), owned) == {"model": "huge", "top_k": 2}
    # An assistant created with a configurable only has it as its context.
    configured = assistant(configurable={"model": "from-config"})
    assert run_context(run_row(), configured) == {"model": "from-config"}
    assert run_context(run_row(context={"top_k": 1}), configured) == {
        "model": "from-config",
        "top_k": 1,
    }
    # Without a context, the request's configurable stands for it (as the official server).
    assert run_context(run_row(config={"configurable": {"model": "cfg"}}), owned) == {
        "model": "cfg",
        "top_k": 2,
    }


def test_fit_context_keeps_the_schemas_fields_and_sets_the_owner() -> None:
    context = {"model": "big", "top_k": 2, "owner": "mallory"}
    assert fit_context(_graph(Knobs), context, "alice") == {"model": "big", "owner": "alice"}
    assert fit_context(_graph(Knobs), {}, "alice") == {"owner": "alice"}
    # A graph without a context schema gets the mapping as it is.
    assert fit_context(_graph(None), context, "alice") == context


def test_run_user_is_the_recorded_caller_as_a_base_user() -> None:
    user = RunUser.of(run_row("alice"))
    assert isinstance(user, BaseUser)
    assert user.identity == "alice"
    assert user["identity"] == "alice"
    assert "permissions" in user
    assert "password" not in user
    assert set(user) == {"identity", "display_name", "is_authenticated", "permissions"}
    # A client-supplied identity in the kwargs is not who the run belongs to.
    claimed = run_row("alice", auth_user={"identity": "mallory", "permissions": ["admin"]})
    assert RunUser.of(claimed).identity == "alice"


def test_context_is_mirrored_into_configurable_as_the_graph_runs_with_it() -> None:
    owned = assistant(configurable={"kept": 1})
    owned["context"] = {"model": "big"}
    run = run_row("alice", context={"top_k": 2, "owner": "mallory", "thread_id": "not-this-thread"})
    config = build_config(run, owned, 1)
    configurable = config["configurable"]
    assert configurable["kept"] == 1
    assert configurable["model"] == "big"
    assert configurable["top_k"] == 2
    assert configurable["thread_id"] == str(THREAD_ID), "Trellis' keys win over the context"

    context = run_context(run, owned)
    fitted = fit_context(_graph(Knobs), context, "alice")
    drop_unfitted(config, context, fitted)
    assert configurable["model"] == "big"
    assert "top_k" not in configurable, "left out by the schema, so not mirrored"
    assert configurable["owner"] == "alice", "Trellis' owner, never the client's claim"
    assert configurable["kept"] == 1
    assert configurable["thread_id"] == str(THREAD_ID)
