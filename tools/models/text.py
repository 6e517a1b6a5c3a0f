"""Plain-text helpers the providers and the critic share: sentences, content words, citations.

Pure functions over strings; no model, no I/O. A citation is an ``[n]`` marker
naming the n-th passage (1-based) a draft was written from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tools.models.provider import CitedRef, PassageLike

__all__ = [
    "Addressing",
    "addressing",
    "cited_refs",
    "content_words",
    "split_sentences",
    "stem",
    "strip_citations",
    "terms",
]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_CITATION = re.compile(r"\s*\[(\d+)\]")
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
_MARKDOWN_PREFIX = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")

_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each else ever few for from further get gets got had hadn't
    has hasn't have haven't having he her here hers herself him himself his how however i if in
    into is isn't it it's its itself just let let's like made make many may me might more most
    much must mustn't my myself need no nor not now of off on once one only or other ought our
    ours ourselves out over own please same shall she should shouldn't so some such tell than
    that that's the their theirs them themselves then there there's these they this those
    through to too under until up upon us use used using very via was wasn't we were weren't
    what what's when where which while who whom whose why will with within without won't would
    wouldn't yes yet you your yours yourself yourselves explain describe say says said show
    shows give know
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, one paragraph or markdown line at a time."""
    sentences: list[str] = []
    for line in re.split(r"\n\s*\n|\n(?=\s*(?:#|[-*+]\s|\d+[.)]\s))", text):
        line = _MARKDOWN_PREFIX.sub("", " ".join(line.split()))
        if not line:
            continue
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return sentences


def strip_citations(text: str) -> str:
    """Remove ``[n]`` citation markers."""
    return _CITATION.sub("", text).strip()


def content_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` without stop words, in order, without repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        word = word.strip("'-")
        if len(word) > 1 and word not in _STOP_WORDS:
            seen.setdefault(word, None)
    return list(seen)


def stem(word: str) -> str:
    """A light, deterministic stem: plural, ``-ing``/``-ed`` and a final ``e`` dropped, so
    ``crash``/``crashes`` and ``survive``/``survives``/``survived`` compare equal."""
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The stems of ``text``'s content words, in order, without repeats."""
    return list(dict.fromkeys(stem(word) for word in content_words(text)))


@dataclass(frozen=True)
class Addressing:
    """How far an answer addresses a question's content words."""

    question_terms: tuple[str, ...]
    """The question's content words, stemmed."""
    addressed: tuple[str, ...]
    """Those an informative answer sentence uses."""
    informative_sentences: int
    """Answer sentences that use a question term and say something of their own."""
    sentences: int

    @property
    def share(self) -> float:
        """The share of the question's terms addressed; 1.0 when it has none to check."""
        if not self.question_terms:
            return 1.0
        return len(self.addressed) / len(self.question_terms)


def addressing(question: str, answer: str, *, min_new_terms: int = 1) -> Addressing:
    """Which of the question's terms the answer addresses: a sentence counts when it uses
    one and adds at least ``min_new_terms`` terms of its own (a sentence that only restates
    the question, or one about something else, addresses nothing)."""
    asked = terms(question)
    wanted = set(asked)
    sentences = [strip_citations(s) for s in split_sentences(strip_citations(answer))]
    addressed: set[str] = set()
    informative = 0
    for sentence in sentences:
        said = set(terms(sentence))
        hits = said & wanted
        if hits and len(said - wanted) >= min_new_terms:
            informative += 1
            addressed |= hits
    return Addressing(
        question_terms=tuple(asked),
        addressed=tuple(t for t in asked if t in addressed),
        informative_sentences=informative,
        sentences=len(sentences),
    )


def cited_refs(text: str, passages: Sequence[PassageLike]) -> tuple[CitedRef, ...]:
    """The passages a text cites with ``[n]`` markers (1-based), once each, by marker."""
    refs: dict[int, CitedRef] = {}
    for match in _CITATION.finditer(text):
        marker = int(match.group(1))
        if 1 <= marker <= len(passages) and marker not in refs:
            p = passages[marker - 1]
            refs[marker] = CitedRef(marker, p.document_id, p.chunk, p.score, p.source)
    return tuple(sorted(refs.values(), key=lambda ref: ref.marker))
