"""Inputs the provider tests share: two retrieved passages and the supervisor's route facts."""

from __future__ import annotations

from tools.models.provider import RouteFacts
from tools.retrieval import Passage

PASSAGES = [
    Passage("doc-a", 0, "Postgres holds the checkpoints of every thread.", 0.8, "a.md"),
    Passage("doc-b", 3, "Redis carries the event streams of running runs.", 0.6, "b.md"),
]


def facts(*allowed: str) -> RouteFacts:
    return RouteFacts(
        question="Where are checkpoints stored?",
        has_image=False,
        image_done=False,
        has_draft=False,
        draft_source=None,
        verdict=None,
        revisions=0,
        allowed=allowed,  # type: ignore[arg-type]
    )
