"""The retriever node: rewrite the question, search the vector index, draft a cited answer.

This module owns the retrieval round: query rewriting (provider), embedding
(toolbox embedder), ``VectorIndex.search`` with the run's ``top_k`` and
``score_threshold`` (``top_k`` doubles on each revision, and a revision searches
with the original question as well as the rewrite), and the drafted answer with
its citations. Its retrieval strength lands in ``state["retrieval"]`` and in a
``custom`` event::

    {"type": "confidence", "node": "retriever", "score": 0.61, "provider": "offline",
     "components": {"strength": 0.61, "top_score": 0.72, "hits": 4}, "query": "..."}
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from agents.context import Context
from agents.state import Citation, Retrieval, State, StateUpdate
from agents.turn import context_of, emit, records_from_passages, retrieval_strength
from tools.retrieval import Passage
from tools.toolbox import current_toolbox

__all__ = ["retriever"]


async def retriever(state: State, runtime: Runtime[Context]) -> StateUpdate:
    """Retrieve passages for the question and draft a grounded answer."""
    toolbox = current_toolbox()
    await toolbox.prepare()
    context = context_of(runtime)
    question = state.get("question", "")
    revisions = state.get("revisions", 0)
    # A caller-chosen name reaches a shared collection only when the operator shares it.
    scope = toolbox.resolve_collection(context.collection, context.owner)
    top_k = context.top_k * (2**revisions)

    rewrite = await toolbox.provider.rewrite_query(
        question, model=context.retriever_model, owner=context.owner
    )
    queries = [rewrite.query] if revisions == 0 else [rewrite.query, question]
    vectors = await toolbox.embedder.embed(queries)
    found: dict[tuple[str, int], Passage] = {}
    for vector in vectors:
        for passage in await toolbox.index.search(
            scope.name,
            vector,
            top_k=top_k,
            score_threshold=context.score_threshold,
            owner=context.owner,
            shared=scope.shared,
        ):
            key = (passage.document_id, passage.chunk)
            if key not in found or found[key].score < passage.score:
                found[key] = passage
    passages = sorted(found.values(), key=lambda p: p.score, reverse=True)[:top_k]

    feedback = "; ".join(state.get("confidence_reasons", [])) if revisions else None
    draft = await toolbox.provider.draft_answer(
        question, passages, feedback=feedback, model=context.retriever_model, owner=context.owner
    )

    records = records_from_passages(passages)
    strength = retrieval_strength(records)
    retrieval = Retrieval(
        query=rewrite.query,
        collection=scope.name,
        top_k=top_k,
        strength=strength,
        top_score=round(float(passages[0].score), 4) if passages else 0.0,
        hits=len(passages),
    )
    emit(
        runtime,
        {
            "type": "confidence",
            "node": "retriever",
            "score": strength,
            "components": {
                "strength": strength,
                "top_score": retrieval["top_score"],
                "hits": len(passages),
            },
            "query": rewrite.query,
            "provider": toolbox.provider.name,
        },
    )
    return {
        "query": rewrite.query,
        "retrieval": retrieval,
        "passages": records,
        "citations": [
            Citation(
                marker=ref.marker,
                document_id=ref.document_id,
                chunk=ref.chunk,
                score=round(float(ref.score), 4),
                source=ref.source,
            )
            for ref in draft.citations
        ],
        "draft": draft.text,
        "draft_source": "retriever",
        "draft_message_id": draft.message_id,
        "verdict": None,
        "prompts": {
            rewrite.prompt.name: rewrite.prompt.version,
            draft.prompt.name: draft.prompt.version,
        },
    }
