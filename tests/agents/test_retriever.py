"""The retriever node against an in-memory Qdrant: query, passages, cited draft, strength event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from langgraph.runtime import Runtime

from agents.context import Context
from agents.retriever import retriever
from agents.state import State
from tests.agents.support import COLLECTION, ScriptedProvider
from tools.toolbox import Toolbox


def state(question: str, **fields: Any) -> State:
    return cast(State, {"messages": [], "question": question, **fields})


@pytest.mark.usefixtures("toolbox")
async def test_retrieves_and_drafts_a_cited_answer(
    runtime: Callable[..., Runtime[Context]], events: list[dict[str, Any]]
) -> None:
    update = await retriever(state("Where are the checkpoints of a thread kept?"), runtime(top_k=3))

    assert update["query"] == "checkpoints thread kept"
    assert len(update["passages"]) == 3
    assert update["passages"][0]["source"] == "postgres.md"
    assert "Postgres holds the checkpoints" in update["draft"]
    assert update["draft_source"] == "retriever"
    assert update["citations"]
    assert {c["source"] for c in update["citations"]} == {"postgres.md"}
    citation = update["citations"][0]
    assert set(citation) == {"marker", "document_id", "chunk", "score", "source"}
    assert citation["document_id"] == "doc-postgres.md"
    assert f"[{citation['marker']}]" in update["draft"]
    assert update["prompts"] == {"retriever_rewrite": 1, "retriever_answer": 1}

    [event] = events
    assert event["type"] == "confidence"
    assert event["node"] == "retriever"
    assert event["score"] == update["retrieval"]["strength"] > 0
    assert event["components"]["hits"] == 3
    assert event["provider"] == "scripted"


@pytest.mark.usefixtures("toolbox")
async def test_score_threshold_can_leave_nothing(
    runtime: Callable[..., Runtime[Context]], events: list[dict[str, Any]]
) -> None:
    update = await retriever(state("Where are checkpoints kept?"), runtime(score_threshold=0.99))
    assert update["passages"] == []
    assert update["citations"] == []
    assert update["retrieval"]["strength"] == 0.0
    assert "do not cover" in update["draft"]
    assert events[0]["score"] == 0.0


async def test_a_revision_widens_the_search_and_passes_feedback(
    toolbox: Toolbox, runtime: Callable[..., Runtime[Context]]
) -> None:
    assert isinstance(toolbox.provider, ScriptedProvider)
    reasons = ["groundedness 0.10: weak"]
    update = await retriever(
        state("Where are checkpoints kept?", revisions=1, confidence_reasons=reasons),
        runtime(top_k=2),
    )
    assert update["retrieval"]["top_k"] == 4
    assert len(update["passages"]) == 4
    [draft_call] = [c for name, c in toolbox.provider.calls if name == "draft_answer"]
    assert draft_call["feedback"] == "groundedness 0.10: weak"


async def test_scripted_model_citations_map_to_passages(
    toolbox: Toolbox, runtime: Callable[..., Runtime[Context]]
) -> None:
    assert isinstance(toolbox.provider, ScriptedProvider)
    toolbox.provider.drafts.append("Vectors live in Qdrant [1]. Unknown marker [9].")
    update = await retriever(state("Which store holds the vectors?"), runtime(top_k=2))
    [citation] = update["citations"]
    assert citation["marker"] == 1
    assert citation["document_id"] == update["passages"][0]["document_id"]
    assert update["retrieval"]["collection"] == COLLECTION
