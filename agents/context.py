"""Per-run knobs of the assistant graph, passed as ``context`` (``context_schema``).

This module owns what a caller may tune per run. Process settings (DSNs, keys,
pool sizes) are not here: they reach the graph through the installed
``tools.toolbox.Toolbox``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Context"]


@dataclass(kw_only=True)
class Context:
    """Per-run configuration read by nodes through ``runtime.context``."""

    supervisor_model: str | None = None
    """Model for routing; None uses the provider's configured model."""
    retriever_model: str | None = None
    """Model for query rewriting and answer drafting."""
    vision_model: str | None = None
    """Model for image questions."""
    critic_model: str | None = None
    """Model for the critic's judgement."""
    top_k: int = 4
    """Passages retrieved per search (doubled on each revision)."""
    score_threshold: float | None = None
    """Minimum passage score; weaker hits are dropped."""
    confidence_threshold: float = 0.6
    """Drafts below this confidence are revised or sent to human review."""
    max_revisions: int = 1
    """Revision rounds the critic may ask for before deciding anyway."""
    human_review: bool = False
    """Interrupt for a human decision when confidence stays below the threshold."""
    collection: str | None = None
    """Vector collection to search; None uses the toolbox's default collection. A name the
    operator does not share (``SHARED_COLLECTIONS``) searches only the run owner's own part."""
    owner: str | None = None
    """Owner the run belongs to; scopes the model response cache (set by the server)."""
