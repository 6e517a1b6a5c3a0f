"""The critic: scores the current draft, then accepts it, asks for a revision, or asks a human.

This module owns the confidence score and the human-review protocol.

Confidence is a weighted combination of three named components, each in [0, 1],
scaled down when the draft does not address the question::

    confidence = min(1, 2 * relevance) * (0.5 * groundedness + 0.2 * retrieval + 0.3 * judge)

- ``groundedness``: for each draft sentence (citation markers removed), the best
  cosine similarity to any sentence of the evidence passages, using the
  toolbox's embedder; averaged over the draft's sentences. It is the heaviest
  weight because it is measured, not opined.
- ``retrieval``: mean score of the top three evidence passages (the retriever's
  strength, or the OCR confidence for image answers).
- ``judge``: the provider's graded judgement of the draft against the question
  and the evidence.
- ``relevance``: the share of the question's content words (stemmed) that the draft
  addresses, counting only sentences that use one and say something of their own
  (``tools.models.text.addressing``). Grounding alone proves nothing about an
  extractive draft, which is always made of evidence sentences: a sentence that
  only restates the question, or true sentences about another subject, must not
  be accepted confidently. Addressing half the question's words counts fully; fewer
  scale the confidence down, to 0 for a draft that addresses none. Not measured
  (1.0) for image answers, whose question names the image rather than its content.

Decision (``verdict``), with ``threshold = context.confidence_threshold``:

- confidence >= threshold → ``accepted``: the draft becomes the answer.
- below, and ``revisions < context.max_revisions`` → ``revise``: back to the
  supervisor, which sends the turn for another, wider retrieval round.
- below, revisions used up, ``context.human_review`` on → ``review``: the
  ``human_review`` node interrupts with::

      {"type": "review", "draft": str, "confidence": float, "components": {...},
       "reasons": [str, ...], "threshold": float, "citations": [...],
       "instructions": str, "prompt": "critic_human_review", "prompt_version": 1}

  and resumes with ``{"decision": "approve" | "reject" | "edit", "value": str | None,
  "comment": str | None}`` (a bare ``"approve"``/``"reject"`` string is accepted too):
  ``approve`` → the draft is the answer (verdict ``approved``); ``edit`` → ``value``
  is the answer (``edited``); ``reject`` → the answer says a reviewer rejected the
  draft, quoting the comment (``rejected``). The score itself is not changed by the
  reviewer.
- below, revisions used up, no human review → ``accepted`` anyway, with the low
  confidence on record for the client to show.

Both nodes emit ``custom`` events::

    {"type": "confidence", "node": "critic", "score": 0.82, "components": {...},
     "weights": {...}, "decision": "accepted", "threshold": 0.6, "reasons": [...],
     "provider": "offline"}
    {"type": "review", "node": "human_review", "decision": "approve"}
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Literal

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from agents.context import Context
from agents.state import PassageRecord, ReviewRecord, State, StateUpdate, Verdict
from agents.turn import context_of, emit, passages_from_records, retrieval_strength
from prompts import load_prompt
from tools.embeddings import Embedder, cosine_matrix
from tools.models.text import addressing, content_words, split_sentences, strip_citations
from tools.toolbox import current_toolbox

__all__ = [
    "WEIGHTS",
    "InvalidReview",
    "combine",
    "critic",
    "groundedness",
    "human_review",
    "parse_review",
]

WEIGHTS: Mapping[str, float] = {"groundedness": 0.5, "retrieval": 0.2, "judge": 0.3}
"""Weights of the confidence components; they sum to 1."""


class InvalidReview(ValueError):
    """Raised when a human-review resume value is not a valid decision."""


def combine(components: Mapping[str, float]) -> float:
    """Weighted confidence from named components, scaled by ``relevance`` (1.0 when absent)
    as the module docstring says, clipped to [0, 1]."""
    total = sum(WEIGHTS[name] * components.get(name, 0.0) for name in WEIGHTS)
    total *= min(1.0, 2.0 * components.get("relevance", 1.0))
    return round(min(1.0, max(0.0, total)), 4)


async def groundedness(embedder: Embedder, draft: str, passages: Sequence[PassageRecord]) -> float:
    """Mean over draft sentences of the best cosine similarity to any evidence sentence."""
    claims = [strip_citations(s) for s in split_sentences(strip_citations(draft))]
    claims = [c for c in claims if content_words(c)]
    evidence = [s for p in passages for s in split_sentences(p["text"]) if content_words(s)]
    if not claims or not evidence:
        return 0.0
    vectors = await embedder.embed(claims + evidence)
    similarity = cosine_matrix(vectors[: len(claims)], vectors[len(claims) :])
    best = [max(0.0, float(row.max())) for row in similarity]
    return round(min(1.0, sum(best) / len(best)), 4)


async def critic(
    state: State, runtime: Runtime[Context]
) -> Command[Literal["supervisor", "human_review"]]:
    """Score the draft and decide: accept, revise, or ask a human."""
    toolbox = current_toolbox()
    context = context_of(runtime)
    draft = state.get("draft") or ""
    question = state.get("question", "")
    records = state.get("passages", [])
    revisions = state.get("revisions", 0)

    judgement = await toolbox.provider.judge(
        question,
        draft,
        passages_from_records(records),
        model=context.critic_model,
        owner=context.owner,
    )
    components = {
        "groundedness": await groundedness(toolbox.embedder, draft, records),
        "retrieval": retrieval_strength(records),
        "judge": round(min(1.0, max(0.0, judgement.score)), 4),
    }
    reasons = [
        f"groundedness {components['groundedness']:.2f}: draft sentences vs evidence sentences",
        f"retrieval {components['retrieval']:.2f}: mean of the top evidence scores",
        f"judge {components['judge']:.2f}: {judgement.reason}",
    ]
    if state.get("draft_source") == "vision":
        components["relevance"] = 1.0
        reasons.append("relevance 1.00: not measured for an answer about an image")
    else:
        addressed = addressing(question, draft)
        components["relevance"] = round(addressed.share, 4)
        reasons.append(
            f"relevance {addressed.share:.2f}: the draft addresses "
            f"{len(addressed.addressed)} of the question's {len(addressed.question_terms)} "
            f"content words ({', '.join(addressed.addressed) or 'none'}) in "
            f"{addressed.informative_sentences} of its {addressed.sentences} sentences"
        )
    confidence = combine(components)

    verdict: Verdict
    goto: Literal["supervisor", "human_review"] = "supervisor"
    if confidence >= context.confidence_threshold:
        verdict = "accepted"
    elif revisions < context.max_revisions:
        verdict = "revise"
    elif context.human_review:
        verdict, goto = "review", "human_review"
    else:
        verdict = "accepted"

    emit(
        runtime,
        {
            "type": "confidence",
            "node": "critic",
            "score": confidence,
            "components": components,
            "weights": dict(WEIGHTS),
            "decision": verdict,
            "threshold": context.confidence_threshold,
            "reasons": reasons,
            "provider": toolbox.provider.name,
        },
    )
    update: StateUpdate = {
        "confidence": confidence,
        "confidence_components": components,
        "confidence_reasons": reasons,
        "verdict": verdict,
        "prompts": {judgement.prompt.name: judgement.prompt.version},
    }
    if verdict == "revise":
        update["revisions"] = revisions + 1
    elif verdict == "accepted":
        update.update(_final(draft, state.get("draft_message_id")))
    return Command(goto=goto, update=update)


def parse_review(value: object) -> ReviewRecord:
    """Validate a human-review resume value (see the module docstring for the format)."""
    if isinstance(value, str):
        value = {"decision": value}
    if not isinstance(value, Mapping):
        raise InvalidReview("a review must be an object with a 'decision'")
    decision = value.get("decision")
    if decision not in ("approve", "reject", "edit"):
        raise InvalidReview("decision must be 'approve', 'reject' or 'edit'")
    edited = value.get("value")
    if decision == "edit" and (not isinstance(edited, str) or not edited.strip()):
        raise InvalidReview("an 'edit' review needs the edited answer as a non-empty 'value'")
    comment = value.get("comment")
    return ReviewRecord(
        decision=decision,
        value=edited if isinstance(edited, str) else None,
        comment=comment if isinstance(comment, str) and comment.strip() else None,
    )


async def human_review(state: State, runtime: Runtime[Context]) -> Command[Literal["supervisor"]]:
    """Interrupt for a human decision on a low-confidence draft, then apply it."""
    context = context_of(runtime)
    draft = state.get("draft") or ""
    confidence = state.get("confidence") or 0.0
    prompt = load_prompt("critic_human_review")
    answer = interrupt(
        {
            "type": "review",
            "draft": draft,
            "confidence": confidence,
            "components": state.get("confidence_components", {}),
            "reasons": state.get("confidence_reasons", []),
            "threshold": context.confidence_threshold,
            "citations": state.get("citations", []),
            "instructions": prompt.format(
                confidence=f"{confidence:.2f}", threshold=f"{context.confidence_threshold:.2f}"
            ),
            "prompt": prompt.name,
            "prompt_version": prompt.version,
        }
    )
    review = parse_review(answer)
    prompts = {prompt.name: prompt.version}
    verdict: Verdict
    if review["decision"] == "approve":
        verdict, final = "approved", _final(draft, state.get("draft_message_id"))
    elif review["decision"] == "edit":
        verdict, final = "edited", _final(review["value"] or "", None)
    else:
        rejected = load_prompt("critic_rejected")
        note = f" Reviewer's comment: {review['comment']}" if review["comment"] else ""
        verdict, final = "rejected", _final(rejected.format(comment=note).strip(), None)
        prompts[rejected.name] = rejected.version
    emit(runtime, {"type": "review", "node": "human_review", "decision": review["decision"]})
    update: StateUpdate = {"review": review, "verdict": verdict, "prompts": prompts, **final}
    return Command(goto="supervisor", update=update)


def _final(answer: str, message_id: str | None) -> StateUpdate:
    # Reusing the streamed draft's id lets the `messages` stream mode skip the
    # final message it already streamed token by token.
    message = AIMessage(content=answer, id=message_id or str(uuid.uuid4()))
    return {"answer": answer, "messages": [message]}
