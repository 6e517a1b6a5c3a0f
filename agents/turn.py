"""Helpers every node shares: reading the current turn out of state and messages.

This module owns how a question is found in the conversation (the last human
message), how images are recognised in its content parts, how per-turn fields
are reset when a new question arrives, and how nodes emit ``custom`` stream
events. It holds no prompt text and does no I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from agents.context import Context
from agents.state import PassageRecord, RouteRecord, State, StateUpdate
from tools.retrieval import Passage

__all__ = [
    "context_of",
    "emit",
    "image_urls",
    "last_human",
    "new_turn_update",
    "passages_from_records",
    "question_text",
    "records_from_passages",
    "retrieval_strength",
    "turn_id",
]


def context_of(runtime: Runtime[Context]) -> Context:
    """The run's context, or the defaults when the caller passed none."""
    context = runtime.context
    if isinstance(context, Context):
        return context
    if isinstance(context, Mapping):
        return Context(**context)
    return Context()


def emit(runtime: Runtime[Context], payload: dict[str, object]) -> None:
    """Write one ``custom`` stream event (a no-op when nobody streams ``custom``)."""
    runtime.stream_writer(payload)


def last_human(messages: Sequence[AnyMessage]) -> HumanMessage | None:
    """The latest human message, which carries the current question."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message
    return None


def question_text(message: HumanMessage) -> str:
    """The text of a human message, ignoring non-text content parts."""
    if isinstance(message.content, str):
        return message.content.strip()
    texts = []
    for part in message.content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
    return " ".join(t.strip() for t in texts if t.strip())


def image_urls(message: HumanMessage) -> list[str]:
    """URLs (data: or http(s):) of the images in a human message's content parts.

    Accepts OpenAI-style ``{"type": "image_url", "image_url": {"url": ...}}`` (or a
    bare string ``image_url``) and LangChain's ``{"type": "image", "url" | "base64"}``.
    """
    if isinstance(message.content, str):
        return []
    urls: list[str] = []
    for part in message.content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if isinstance(url, str) and url:
                urls.append(url)
        elif kind == "image":
            if isinstance(part.get("url"), str):
                urls.append(part["url"])
            elif isinstance(part.get("base64"), str):
                mime = part.get("mime_type") or "image/png"
                urls.append(f"data:{mime};base64,{part['base64']}")
            elif isinstance(part.get("data"), bytes):
                encoded = base64.b64encode(part["data"]).decode()
                urls.append(f"data:{part.get('mime_type') or 'image/png'};base64,{encoded}")
    return urls


def new_turn_update(turn: str, question: str, record: RouteRecord) -> StateUpdate:
    """Reset every per-turn field for a new question, starting the route with ``record``."""
    return {
        "turn": turn,
        "question": question,
        "route": Overwrite([record]),
        "prompts": Overwrite({record["prompt"]: record["prompt_version"]}),
        "query": None,
        "retrieval": None,
        "passages": [],
        "citations": [],
        "draft": None,
        "draft_source": None,
        "draft_message_id": None,
        "image_findings": None,
        "confidence": None,
        "confidence_components": {},
        "confidence_reasons": [],
        "verdict": None,
        "revisions": 0,
        "review": None,
        "answer": None,
    }


def turn_id(state: State, message: HumanMessage) -> str:
    """A stable id for the turn the human message starts."""
    return message.id or f"turn-{len(state['messages'])}"


def passages_from_records(records: Sequence[PassageRecord]) -> list[Passage]:
    """State records to ``Passage`` objects for the tools."""
    return [
        Passage(
            document_id=r["document_id"],
            chunk=r["chunk"],
            text=r["text"],
            score=r["score"],
            source=r["source"],
        )
        for r in records
    ]


def records_from_passages(passages: Sequence[Passage]) -> list[PassageRecord]:
    """``Passage`` objects to plain state records."""
    return [
        PassageRecord(
            document_id=p.document_id,
            chunk=p.chunk,
            text=p.text,
            score=float(p.score),
            source=p.source,
        )
        for p in passages
    ]


def retrieval_strength(records: Sequence[PassageRecord]) -> float:
    """Mean score of the top three passages, clipped to [0, 1]; 0 without passages."""
    scores = sorted((r["score"] for r in records), reverse=True)[:3]
    if not scores:
        return 0.0
    return round(min(1.0, max(0.0, sum(scores) / len(scores))), 4)
