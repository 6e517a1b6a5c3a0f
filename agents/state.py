"""The built-in assistant's state: a narrow input schema and the full graph state.

This module owns the shape of everything the assistant keeps in a checkpoint,
the reducers that merge node updates, and the plain-data records stored in it
(only dicts, lists, strings and numbers besides messages, so the state
round-trips through LangGraph's ``JsonPlusSerializer`` unchanged).

Storage stays flat per step: ``messages`` lives in a ``DeltaChannel``, which
checkpoints only the new writes of each step (plus a full snapshot every
``MESSAGES_SNAPSHOT_EVERY`` updates) instead of the whole conversation, so a
long thread's checkpoints grow linearly rather than quadratically. Every other
field is bounded per turn and is reset when a new question arrives.
"""

from __future__ import annotations

from typing import Annotated, Literal

from langchain_core.messages import AnyMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer
from langgraph.types import Overwrite
from typing_extensions import TypedDict

__all__ = [
    "MESSAGES_SNAPSHOT_EVERY",
    "Citation",
    "ImageFindings",
    "InputState",
    "Messages",
    "PassageRecord",
    "Retrieval",
    "ReviewRecord",
    "RouteRecord",
    "State",
    "StateUpdate",
    "Verdict",
    "append_records",
    "merge_versions",
]

MESSAGES_SNAPSHOT_EVERY = 100
"""Messages updates between full snapshots; bounds the replay on read."""

Messages = Annotated[
    list[AnyMessage],
    DeltaChannel(_messages_delta_reducer, snapshot_frequency=MESSAGES_SNAPSHOT_EVERY),
]
"""Conversation messages; ids dedupe, ``RemoveMessage`` deletes, like ``add_messages``."""


def append_records(left: list[RouteRecord], right: list[RouteRecord]) -> list[RouteRecord]:
    """Append route records (a node writes ``Overwrite([...])`` to reset at a new turn)."""
    return [*left, *right]


def merge_versions(left: dict[str, int], right: dict[str, int]) -> dict[str, int]:
    """Merge prompt-version maps; later writes win."""
    return {**left, **right}


Verdict = Literal["accepted", "revise", "review", "approved", "edited", "rejected"]
"""The critic's or the reviewer's decision on the current draft.

``accepted``: confidence at or above the threshold, or revisions exhausted without
human review. ``revise``: below threshold, another retrieval round is allowed.
``review``: waiting for a human. ``approved`` / ``edited`` / ``rejected``: the
human's decision.
"""


class RouteRecord(TypedDict):
    """One supervisor hand-off."""

    node: str
    """The node that decided (``supervisor``)."""
    decision: str
    """Where it handed off: ``retriever``, ``vision``, ``critic`` or ``finish``."""
    reason: str
    """Why, in one sentence."""
    prompt: str
    """Prompt name the decision came from."""
    prompt_version: int
    """Prompt version the decision came from."""
    provider: str
    """Model provider in use (``offline`` or ``openai``)."""


class PassageRecord(TypedDict):
    """A retrieved passage (or OCR text used as evidence)."""

    document_id: str
    """Document the passage belongs to."""
    chunk: int
    """Chunk number within the document."""
    text: str
    """The passage text."""
    score: float
    """Similarity to the query (cosine, 0..1 for normalised vectors)."""
    source: str
    """Where the document came from (path, URL, ``ocr``)."""


class Citation(TypedDict):
    """A passage the answer cites."""

    marker: int
    """The ``[n]`` number used in the answer text."""
    document_id: str
    """Cited document."""
    chunk: int
    """Cited chunk."""
    score: float
    """Retrieval score of the cited chunk."""
    source: str
    """Where the cited document came from."""


class Retrieval(TypedDict):
    """What the retriever searched for and how strong the hits were."""

    query: str
    """The rewritten search query."""
    collection: str
    """The collection searched."""
    top_k: int
    """How many passages were asked for."""
    strength: float
    """Mean score of the top three passages, 0 without hits."""
    top_score: float
    """Best passage score, 0 without hits."""
    hits: int
    """Passages returned."""


class ImageFindings(TypedDict):
    """What the vision agent read from the question's image."""

    ok: bool
    """False when the image was rejected or could not be loaded."""
    message: str
    """Human-readable outcome, e.g. why the image was rejected."""
    ocr_text: str
    """Text found in the image ('' when none)."""
    ocr_confidence: float | None
    """OCR confidence in [0, 1] when the OCR engine reports one."""
    facts: dict[str, object]
    """Measured image facts (size, format, ...)."""


class ReviewRecord(TypedDict):
    """A human reviewer's answer to a low-confidence draft."""

    decision: Literal["approve", "reject", "edit"]
    """What the reviewer decided."""
    value: str | None
    """The edited answer (for ``edit``)."""
    comment: str | None
    """Optional free-text comment."""


class InputState(TypedDict):
    """What a run accepts: the conversation so far plus the new question."""

    messages: Messages
    """Conversation messages; the last human message is the question. Images travel as
    OpenAI-style content parts ``{"type": "image_url", "image_url": {"url": ...}}``."""


class State(InputState, total=False):
    """The full state of the assistant graph."""

    turn: str | None
    """Id of the human message the per-turn fields below belong to."""
    route: Annotated[list[RouteRecord], append_records]
    """Supervisor hand-offs in this turn, oldest first."""
    question: str
    """Text of the current question."""
    query: str | None
    """The rewritten search query of the latest retrieval."""
    retrieval: Retrieval | None
    """Strength of the latest retrieval (mirrors the retriever's ``confidence`` event)."""
    passages: list[PassageRecord]
    """Evidence for the current draft: retrieved passages or the image's OCR text."""
    citations: list[Citation]
    """Passages the current draft (and so the answer) cites."""
    draft: str | None
    """The current draft answer, before the critic's verdict."""
    draft_source: Literal["retriever", "vision"] | None
    """Which agent wrote the draft."""
    draft_message_id: str | None
    """Id of the streamed draft message, reused by the answer message."""
    prompts: Annotated[dict[str, int], merge_versions]
    """Prompt versions used in this turn, by prompt name."""
    image_findings: ImageFindings | None
    """What the vision agent read from the image, if the question had one."""
    confidence: float | None
    """The critic's confidence in the draft, in [0, 1]."""
    confidence_components: dict[str, float]
    """Named parts of ``confidence``: ``groundedness``, ``retrieval``, ``judge``."""
    confidence_reasons: list[str]
    """Why the confidence is what it is, one line per component."""
    verdict: Verdict | None
    """The critic's or reviewer's decision on the current draft."""
    revisions: int
    """Revision rounds used in this turn."""
    review: ReviewRecord | None
    """The human reviewer's answer, when one was asked."""
    answer: str | None
    """The final answer of this turn (also appended to ``messages``)."""


class StateUpdate(TypedDict, total=False):
    """What a node returns: any of ``State``'s fields, each meaning what it means there.

    ``route`` and ``prompts`` take an ``Overwrite`` to reset at a new turn instead of
    going through their reducers; ``messages`` are appended (ids dedupe).
    """

    messages: list[AnyMessage]
    turn: str | None
    route: list[RouteRecord] | Overwrite
    question: str
    query: str | None
    retrieval: Retrieval | None
    passages: list[PassageRecord]
    citations: list[Citation]
    draft: str | None
    draft_source: Literal["retriever", "vision"] | None
    draft_message_id: str | None
    prompts: dict[str, int] | Overwrite
    image_findings: ImageFindings | None
    confidence: float | None
    confidence_components: dict[str, float]
    confidence_reasons: list[str]
    verdict: Verdict | None
    revisions: int
    review: ReviewRecord | None
    answer: str | None
