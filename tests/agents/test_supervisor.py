"""The supervisor's guardrails, routing decisions, turn bookkeeping and route events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from agents.context import Context
from agents.state import State
from agents.supervisor import allowed_next, supervisor
from tests.agents.support import ScriptedProvider
from tools.models.provider import RouteFacts
from tools.toolbox import Toolbox

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def facts(**overrides: Any) -> RouteFacts:
    base: dict[str, Any] = {
        "question": "q",
        "has_image": False,
        "image_done": False,
        "has_draft": False,
        "draft_source": None,
        "verdict": None,
        "revisions": 0,
        "allowed": (),
    }
    return RouteFacts(**{**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, ("retriever",)),
        ({"has_image": True}, ("vision", "retriever")),
        ({"has_image": True, "image_done": True, "has_draft": True}, ("critic",)),
        ({"has_draft": True}, ("critic",)),
        ({"has_draft": True, "verdict": "revise", "draft_source": "retriever"}, ("retriever",)),
        (
            {"has_image": True, "image_done": True, "verdict": "revise", "draft_source": "vision"},
            ("vision", "retriever"),
        ),
        ({"has_draft": True, "verdict": "accepted"}, ("finish",)),
        ({"has_draft": True, "verdict": "rejected"}, ("finish",)),
    ],
)
def test_allowed_next(overrides: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert allowed_next(facts(**overrides)) == expected


def state(**fields: Any) -> State:
    return cast(State, fields)


@pytest.mark.usefixtures("toolbox")
async def test_new_question_goes_to_retriever_and_resets_the_turn(
    runtime: Callable[..., Runtime[Context]], events: list[dict[str, Any]]
) -> None:
    question = HumanMessage("Where are checkpoints stored?", id="h1")
    old = {"turn": "h0", "answer": "old answer", "verdict": "accepted", "revisions": 1}
    command = await supervisor(state(messages=[question], **old), runtime())

    assert command.goto == "retriever"
    update = command.update
    assert isinstance(update, dict)
    assert update["turn"] == "h1"
    assert update["question"] == "Where are checkpoints stored?"
    assert update["answer"] is None
    assert update["verdict"] is None
    assert update["revisions"] == 0
    assert isinstance(update["route"], Overwrite)
    [record] = update["route"].value
    assert record["decision"] == "retriever"
    assert record["prompt"] == "supervisor"
    assert record["provider"] == "scripted"
    assert events == [{"type": "route", **record}]


@pytest.mark.usefixtures("toolbox")
@pytest.mark.parametrize(
    ("fields", "goto"),
    [
        ({"draft": "A draft.", "draft_source": "retriever", "verdict": None}, "critic"),
        ({"draft": "A draft.", "verdict": "accepted"}, "__end__"),
        ({"draft": "A draft.", "draft_source": "retriever", "verdict": "revise"}, "retriever"),
    ],
)
async def test_routes_within_a_turn(
    runtime: Callable[..., Runtime[Context]], fields: dict[str, Any], goto: str
) -> None:
    messages = [HumanMessage("Where are checkpoints stored?", id="h1")]
    command = await supervisor(state(messages=messages, turn="h1", **fields), runtime())
    assert command.goto == goto
    assert isinstance(command.update, dict)
    assert [r["decision"] for r in command.update["route"]] == [
        "finish" if goto == "__end__" else goto
    ]


@pytest.mark.usefixtures("toolbox")
async def test_image_question_goes_to_vision(runtime: Callable[..., Runtime[Context]]) -> None:
    message = HumanMessage(content=[{"type": "text", "text": "What does it say?"}, IMAGE], id="h")
    command = await supervisor(state(messages=[message]), runtime())
    assert command.goto == "vision"


async def test_a_disallowed_choice_is_overruled(
    toolbox: Toolbox, runtime: Callable[..., Runtime[Context]]
) -> None:
    assert isinstance(toolbox.provider, ScriptedProvider)
    toolbox.provider.routes.append("finish")
    command = await supervisor(state(messages=[HumanMessage("hello", id="h")]), runtime())
    assert command.goto == "retriever"
    assert isinstance(command.update, dict)
    assert "not allowed" in command.update["route"].value[0]["reason"]


async def test_provider_sees_allowed_options_and_context_model(
    toolbox: Toolbox, runtime: Callable[..., Runtime[Context]]
) -> None:
    assert isinstance(toolbox.provider, ScriptedProvider)
    message = HumanMessage(content=[{"type": "text", "text": "Read this"}, IMAGE], id="h")
    await supervisor(state(messages=[message]), runtime(supervisor_model="router-x"))
    [(name, call)] = toolbox.provider.calls
    assert name == "route"
    assert call["facts"].allowed == ("vision", "retriever")
    assert call["model"] == "router-x"


@pytest.mark.usefixtures("toolbox")
async def test_without_a_question_the_turn_ends(runtime: Callable[..., Runtime[Context]]) -> None:
    command = await supervisor(state(messages=[AIMessage("hi")]), runtime())
    assert command.goto == "__end__"
