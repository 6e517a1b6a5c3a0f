"""OfflineProvider: deterministic routing, rewriting, extractive drafts and grading."""

from __future__ import annotations

from dataclasses import replace

from tests.agents.support import HashEmbedder
from tests.tools.models.support import PASSAGES, facts
from tools.models.offline_provider import OfflineProvider


async def test_offline_rewrite_drops_stop_words() -> None:
    provider = OfflineProvider(HashEmbedder())
    rewrite = await provider.rewrite_query("How does Trellis store the checkpoints of a thread?")
    assert rewrite.query == "trellis store checkpoints thread"
    assert rewrite.prompt.name == "retriever_rewrite"


async def test_offline_draft_is_extractive_and_cited() -> None:
    provider = OfflineProvider(HashEmbedder())
    draft = await provider.draft_answer("Which store holds the checkpoints?", PASSAGES)
    assert draft.text.startswith("Postgres holds the checkpoints of every thread. [1]")
    assert draft.citations[0].document_id == "doc-a"
    nothing = await provider.draft_answer("Which store holds the checkpoints?", [])
    assert nothing.citations == ()


async def test_offline_judge_is_graded() -> None:
    provider = OfflineProvider(HashEmbedder())
    good = await provider.judge(
        "Which store holds the checkpoints?", "Postgres holds the checkpoints [1].", PASSAGES
    )
    poor = await provider.judge(
        "Which store holds the checkpoints?", "Bananas are yellow fruit.", PASSAGES
    )
    assert 0.0 <= poor.score < 0.3 < 0.7 < good.score <= 1.0


async def test_offline_routes_from_content() -> None:
    provider = OfflineProvider(HashEmbedder())
    base = facts("retriever", "vision", "critic", "finish")
    assert (await provider.route(base)).next == "retriever"
    assert (await provider.route(replace(base, has_image=True))).next == "vision"
    assert (await provider.route(replace(base, has_draft=True))).next == "critic"
    assert (await provider.route(replace(base, verdict="accepted"))).next == "finish"
    assert provider.name == "offline"
