"""The critic's confidence components, its decisions, and the review answer format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from agents.context import Context
from agents.critic import WEIGHTS, InvalidReview, combine, critic, groundedness, parse_review
from agents.state import PassageRecord, State
from tests.agents.support import HashEmbedder, ScriptedProvider
from tools.toolbox import Toolbox

QUESTION = "Where are the checkpoints of a thread kept?"
EVIDENCE = [
    PassageRecord(
        document_id="doc-postgres.md",
        chunk=0,
        text="Postgres holds the checkpoints of every thread. The checkpointer writes one row "
        "per step.",
        score=0.8,
        source="postgres.md",
    )
]
GROUNDED = "Postgres holds the checkpoints of every thread [1]. One row is written per step [1]."
UNGROUNDED = "Bananas are yellow and grow in tropical climates. Monkeys enjoy eating them."


def state(draft: str, passages: list[PassageRecord], **fields: Any) -> State:
    base = {"messages": [], "question": QUESTION, "draft": draft, "draft_message_id": "draft-1"}
    return cast(State, {**base, "passages": passages, **fields})


def test_weights_sum_to_one_and_combine_clips() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)
    assert combine({"groundedness": 1.0, "retrieval": 1.0, "judge": 1.0}) == 1.0
    assert combine({"groundedness": 0.5, "retrieval": 0.0, "judge": 1.0}) == 0.55
    assert combine({}) == 0.0
    # relevance scales: half the question's words addressed count fully, none gives zero
    full = {"groundedness": 1.0, "retrieval": 1.0, "judge": 1.0}
    assert combine({**full, "relevance": 0.5}) == 1.0
    assert combine({**full, "relevance": 0.25}) == 0.5
    assert combine({**full, "relevance": 0.0}) == 0.0


async def test_groundedness_measures_support_by_evidence(embedder: HashEmbedder) -> None:
    assert await groundedness(embedder, GROUNDED, EVIDENCE) > 0.7
    assert await groundedness(embedder, UNGROUNDED, EVIDENCE) < 0.2
    assert await groundedness(embedder, GROUNDED, []) == 0.0
    assert await groundedness(embedder, "", EVIDENCE) == 0.0


@pytest.mark.usefixtures("toolbox")
async def test_score_rises_with_grounding_and_falls_without(
    runtime: Callable[..., Runtime[Context]], events: list[dict[str, Any]]
) -> None:
    grounded = await critic(state(GROUNDED, EVIDENCE), runtime())
    ungrounded = await critic(state(UNGROUNDED, EVIDENCE), runtime())
    no_evidence = await critic(state(GROUNDED, []), runtime())

    scores = [c.update["confidence"] for c in (grounded, ungrounded, no_evidence)]  # type: ignore[index]
    assert scores[0] > 0.7
    assert scores[1] < 0.35
    assert scores[2] < 0.35
    components = grounded.update["confidence_components"]  # type: ignore[index]
    assert set(components) == {"groundedness", "retrieval", "judge", "relevance"}
    assert all(0.0 <= v <= 1.0 for v in components.values())
    assert components["retrieval"] == 0.8
    assert scores[0] == combine(components)
    assert [e["score"] for e in events] == scores
    assert events[0] == {
        "type": "confidence",
        "node": "critic",
        "score": scores[0],
        "components": components,
        "weights": dict(WEIGHTS),
        "decision": "accepted",
        "threshold": 0.6,
        "reasons": grounded.update["confidence_reasons"],  # type: ignore[index]
        "provider": "scripted",
    }


@pytest.mark.usefixtures("toolbox")
async def test_accepting_makes_the_draft_the_answer(
    runtime: Callable[..., Runtime[Context]],
) -> None:
    command = await critic(state(GROUNDED, EVIDENCE), runtime())
    assert command.goto == "supervisor"
    update = command.update
    assert isinstance(update, dict)
    assert update["verdict"] == "accepted"
    assert update["answer"] == GROUNDED
    [message] = update["messages"]
    assert isinstance(message, AIMessage)
    assert message.id == "draft-1"  # the streamed draft's id, so streams dedupe it
    assert message.content == GROUNDED


@pytest.mark.usefixtures("toolbox")
@pytest.mark.parametrize(
    ("knobs", "revisions", "verdict", "goto"),
    [
        ({"max_revisions": 2}, 0, "revise", "supervisor"),
        ({"max_revisions": 2}, 1, "revise", "supervisor"),
        ({"max_revisions": 2}, 2, "accepted", "supervisor"),
        ({"max_revisions": 1, "human_review": True}, 0, "revise", "supervisor"),
        ({"max_revisions": 1, "human_review": True}, 1, "review", "human_review"),
        ({"max_revisions": 0, "human_review": True}, 0, "review", "human_review"),
    ],
)
async def test_low_confidence_revises_then_decides(
    runtime: Callable[..., Runtime[Context]],
    knobs: dict[str, Any],
    revisions: int,
    verdict: str,
    goto: str,
) -> None:
    command = await critic(state(UNGROUNDED, EVIDENCE, revisions=revisions), runtime(**knobs))
    update = command.update
    assert isinstance(update, dict)
    assert update["verdict"] == verdict
    assert command.goto == goto
    if verdict == "revise":
        assert update["revisions"] == revisions + 1
        assert "answer" not in update
    if verdict == "review":
        assert "answer" not in update


async def test_judge_is_the_providers_and_uses_the_context_model(
    toolbox: Toolbox, runtime: Callable[..., Runtime[Context]]
) -> None:
    assert isinstance(toolbox.provider, ScriptedProvider)
    toolbox.provider.judgements.extend([1.0, 0.0])
    high = await critic(state(GROUNDED, EVIDENCE), runtime(critic_model="judge-x"))
    low = await critic(state(GROUNDED, EVIDENCE), runtime())
    assert high.update["confidence_components"]["judge"] == 1.0  # type: ignore[index]
    assert low.update["confidence_components"]["judge"] == 0.0  # type: ignore[index]
    diff = high.update["confidence"] - low.update["confidence"]  # type: ignore[index]
    assert diff == pytest.approx(WEIGHTS["judge"], abs=1e-3)
    assert toolbox.provider.calls[0][1]["model"] == "judge-x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"decision": "approve"}, {"decision": "approve", "value": None, "comment": None}),
        ("approve", {"decision": "approve", "value": None, "comment": None}),
        (
            {"decision": "edit", "value": "Fixed.", "comment": "typo"},
            {"decision": "edit", "value": "Fixed.", "comment": "typo"},
        ),
        (
            {"decision": "reject", "comment": "wrong"},
            {"decision": "reject", "value": None, "comment": "wrong"},
        ),
    ],
)
def test_parse_review_accepts_the_documented_format(value: object, expected: object) -> None:
    assert parse_review(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, 3, {"decision": "maybe"}, {"decision": "edit"}, {"decision": "edit", "value": " "}],
)
def test_parse_review_refuses_anything_else(value: object) -> None:
    with pytest.raises(InvalidReview):
        parse_review(value)


REDIS = PassageRecord(
    document_id="doc-redis.md",
    chunk=0,
    text="Redis carries the event streams of running runs. Clients that reconnect resume "
    "from their last event id.",
    score=0.8,
    source="redis.md",
)
OFF_TOPIC = (
    "Redis carries the event streams of running runs [2]. "
    "Clients resume from their last event id [2]."
)


@pytest.mark.usefixtures("toolbox")
async def test_a_grounded_answer_to_another_question_is_not_confident(
    runtime: Callable[..., Runtime[Context]],
) -> None:
    # Every sentence is true and quoted from the evidence, but none is about checkpoints.
    command = await critic(state(OFF_TOPIC, [*EVIDENCE, REDIS]), runtime(max_revisions=1))
    update = command.update
    assert isinstance(update, dict)
    components = update["confidence_components"]
    assert components["groundedness"] > 0.9
    assert components["relevance"] == 0.0
    assert update["confidence"] == 0.0
    assert update["verdict"] == "revise"
    assert update["confidence_reasons"][-1].startswith(
        "relevance 0.00: the draft addresses 0 of the question's 3 content words (none)"
    )
    on_topic = await critic(state(GROUNDED, [*EVIDENCE, REDIS]), runtime())
    assert on_topic.update["confidence_components"]["relevance"] == pytest.approx(2 / 3, abs=1e-3)  # type: ignore[index]
    assert on_topic.update["verdict"] == "accepted"  # type: ignore[index]


@pytest.mark.usefixtures("toolbox")
async def test_relevance_is_not_measured_for_an_image_answer(
    runtime: Callable[..., Runtime[Context]],
) -> None:
    drafted = 'The image contains the text: "OPEN DAILY". It is a 900x140 PNG image.'
    command = await critic(state(drafted, [], draft_source="vision"), runtime())
    assert command.update["confidence_components"]["relevance"] == 1.0  # type: ignore[index]
