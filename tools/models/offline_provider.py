"""``OfflineProvider``: the ``ModelProvider`` tasks done deterministically, without a network.

Rule-based routing, keyword query rewriting, extractive answers ranked by
embedding similarity, image descriptions from OCR text and image facts, and a
graded judgement from lexical and embedding overlap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from prompts import load_prompt
from tools.embeddings import Embedder, cosine_matrix
from tools.models.provider import (
    Draft,
    ImageDescription,
    ImageLike,
    Judgement,
    Next,
    PassageLike,
    PromptUse,
    QueryRewrite,
    RouteDecision,
    RouteFacts,
)
from tools.models.text import (
    addressing,
    cited_refs,
    content_words,
    split_sentences,
    strip_citations,
    terms,
)

__all__ = ["OfflineProvider"]

_NO_ANSWER = "The documents I searched do not cover this question."
_NO_TEXT = "No text was found in the image."
_TEXT_NOT_READ = "The text in the image, if any, could not be read."


class OfflineProvider:
    """Deterministic provider that works without any network access.

    It still records the prompt each task corresponds to, so traces look the
    same whichever provider ran.
    """

    name = "offline"

    def __init__(
        self, embedder: Embedder, *, max_answer_sentences: int = 3, min_similarity: float = 0.2
    ) -> None:
        self._embedder = embedder
        self._max_sentences = max_answer_sentences
        self._min_similarity = min_similarity

    async def route(
        self, facts: RouteFacts, *, model: str | None = None, owner: str | None = None
    ) -> RouteDecision:
        """Route from the turn's content: image → vision, draft → critic, question → retriever."""
        prompt = PromptUse.of(load_prompt("supervisor"))
        choice: Next
        if facts.verdict in ("accepted", "approved", "edited", "rejected"):
            choice, reason = "finish", f"the critic's verdict is {facts.verdict}"
        elif facts.has_image and not facts.image_done:
            choice, reason = "vision", "the question carries an image"
        elif facts.verdict == "revise":
            choice = "vision" if facts.draft_source == "vision" else "retriever"
            reason = f"the critic asked for revision {facts.revisions}"
        elif facts.has_draft:
            choice, reason = "critic", "a draft exists and has not been checked"
        else:
            choice, reason = "retriever", "the question needs grounding in the documents"
        if choice not in facts.allowed:
            choice, reason = facts.allowed[0], f"{reason}; only {facts.allowed[0]} is allowed"
        return RouteDecision(choice, reason, prompt, "offline-rules")

    async def rewrite_query(
        self, question: str, *, model: str | None = None, owner: str | None = None
    ) -> QueryRewrite:
        """Keep the question's content words, in order."""
        words = content_words(question)
        query = " ".join(words) if words else question.strip()
        prompt = PromptUse.of(load_prompt("retriever_rewrite"))
        return QueryRewrite(query, tuple(words[:6]), prompt, "offline-keywords")

    async def draft_answer(
        self,
        question: str,
        passages: Sequence[PassageLike],
        *,
        feedback: str | None = None,
        model: str | None = None,
        owner: str | None = None,
    ) -> Draft:
        """Answer with the retrieved sentences closest to the question, citing their passages."""
        prompt = PromptUse.of(load_prompt("retriever_answer"))
        asked = set(terms(question))
        # A sentence must say something beyond the question's own words: a heading that
        # restates the question is the closest match and answers nothing.
        candidates = [
            (index, position, sentence)
            for index, passage in enumerate(passages)
            for position, sentence in enumerate(split_sentences(_prose(passage.text)))
            if len(set(terms(sentence)) - asked) >= 2
        ]
        if not candidates:
            return Draft(_NO_ANSWER, (), prompt, "offline-extractive")
        vectors = await self._embedder.embed([question] + [c[2] for c in candidates])
        similarity = cosine_matrix(vectors[:1], vectors[1:])[0]
        question_words = set(content_words(question))
        scored = []
        for (index, position, sentence), cos in zip(candidates, similarity, strict=True):
            overlap = len(question_words & set(content_words(sentence)))
            scored.append((float(cos) + 0.02 * overlap, index, position, sentence))
        scored.sort(key=lambda item: (-item[0], item[1], item[2]))
        best = scored[0][0]
        if best < self._min_similarity:
            return Draft(_NO_ANSWER, (), prompt, "offline-extractive")
        chosen = [s for s in scored if s[0] >= max(self._min_similarity, best - 0.15)]
        chosen = chosen[: self._max_sentences]  # best first: the answer leads with its best match
        text = " ".join(
            f"{_terminated(sentence)} [{index + 1}]" for _, index, _, sentence in chosen
        )
        return Draft(text, cited_refs(text, passages), prompt, "offline-extractive")

    async def describe_image(
        self,
        question: str,
        image: ImageLike | None,
        ocr_text: str,
        facts: Mapping[str, object],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> ImageDescription:
        """Describe the image from its OCR text and measured facts."""
        ocr = " ".join(ocr_text.split())
        if ocr:
            parts = [f'The image contains the text: "{ocr}".']
        elif facts.get("ocr") in ("unavailable", "failed"):
            parts = [_TEXT_NOT_READ]  # OCR did not run: nothing is known about its text
        else:
            parts = [_NO_TEXT]
        width, height = facts.get("width"), facts.get("height")
        fmt = facts.get("original_format") or facts.get("format")
        if width and height:
            parts.append(f"It is a {width}x{height} {fmt or ''} image.".replace("  ", " "))
        return ImageDescription(" ".join(parts), PromptUse.of(load_prompt("vision")), "offline-ocr")

    async def judge(
        self,
        question: str,
        draft: str,
        passages: Sequence[PassageLike],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> Judgement:
        """Grade from keyword coverage, evidence support and question-draft similarity.

        score = 0.4 * support + 0.3 * coverage + 0.3 * similarity, where support is the
        share of the draft's content words found in the evidence, coverage the share
        of the question's content words the draft addresses (``addressing``: in
        sentences that say something of their own), and similarity the cosine between
        question and draft embeddings (floored at 0).
        """
        prompt = PromptUse.of(load_prompt("critic_judge"))
        plain = strip_citations(draft)
        draft_words = set(content_words(plain))
        evidence_words = set(content_words(" ".join(p.text for p in passages)))
        question_words = set(content_words(question))
        if not draft_words or not evidence_words:
            return Judgement(0.0, "the draft has no evidence to stand on", prompt, "offline-judge")
        support = len(draft_words & evidence_words) / len(draft_words)
        coverage = addressing(question, draft).share if question_words else 0.0
        vectors = await self._embedder.embed([question, plain])
        similarity = max(0.0, float(cosine_matrix(vectors[:1], vectors[1:])[0][0]))
        score = min(1.0, max(0.0, 0.4 * support + 0.3 * coverage + 0.3 * similarity))
        reason = (
            f"support {support:.2f} of draft words in evidence, "
            f"coverage {coverage:.2f} of question words, similarity {similarity:.2f}"
        )
        return Judgement(round(score, 4), reason, prompt, "offline-judge")


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s.*$", re.MULTILINE)
_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)


def _prose(text: str) -> str:
    """A passage without its Markdown headings and code blocks: titles and code are not
    sentences an answer can quote."""
    return _HEADING.sub("", _FENCED.sub("", text))


def _terminated(sentence: str) -> str:
    sentence = sentence.rstrip(":;, ")
    return sentence if sentence[-1:] in ".!?" else sentence + "."
