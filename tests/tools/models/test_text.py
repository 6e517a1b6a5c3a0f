"""Text helpers: sentence splitting, content words, stems, addressing and ``[n]`` citations."""

from __future__ import annotations

import pytest

from tests.tools.models.support import PASSAGES
from tools.models.provider import CitedRef
from tools.models.text import (
    addressing,
    cited_refs,
    content_words,
    split_sentences,
    stem,
    strip_citations,
)


def test_sentences_split_at_terminal_punctuation_before_a_capital_or_digit() -> None:
    text = 'First one. Second one! "Third" here? 4 items. e.g. lowercase stays.'
    assert split_sentences(text) == [
        "First one.",
        "Second one!",
        '"Third" here?',
        "4 items. e.g. lowercase stays.",
    ]


def test_paragraphs_and_markdown_lines_are_separate_sentences_without_their_markers() -> None:
    text = "# Title\n\nA paragraph\nwrapped over lines.\n- bullet a\n* bullet b\n1. step one"
    assert split_sentences(text) == [
        "Title",
        "A paragraph wrapped over lines.",
        "bullet a",
        "bullet b",
        "step one",
    ]
    assert split_sentences("\n\n  \n") == []


def test_strip_citations_removes_markers_and_the_space_before_them() -> None:
    assert strip_citations("Postgres [1] holds it [2][3]. ") == "Postgres holds it."
    assert strip_citations("no markers [a]") == "no markers [a]"


def test_content_words_drop_stop_words_short_words_and_repeats_in_order() -> None:
    words = content_words("What's the Trellis server's queue? The QUEUE, it's -x a b2 don't")
    assert words == ["trellis", "server's", "queue", "b2"]
    assert content_words("Explain how it is done") == ["done"]
    assert content_words("") == []


def test_cited_refs_keep_each_valid_marker_once_in_marker_order() -> None:
    refs = cited_refs("x [2] y [1] z [2] w [3] [0]", PASSAGES)
    assert refs == (
        CitedRef(1, "doc-a", 0, 0.8, "a.md"),
        CitedRef(2, "doc-b", 3, 0.6, "b.md"),
    )
    assert cited_refs("nothing cited", PASSAGES) == ()


@pytest.mark.parametrize("text", ["[1]", "see [1]."])
def test_cited_refs_need_passages(text: str) -> None:
    assert cited_refs(text, []) == ()


@pytest.mark.parametrize(
    "words",
    [
        ("crash", "crashes", "crashed"),
        ("survive", "survives", "survived", "surviving"),
        ("score", "scores"),
        ("query", "queries"),
    ],
)
def test_stem_makes_inflections_compare_equal(words: tuple[str, ...]) -> None:
    assert len({stem(word) for word in words}) == 1


def test_addressing_counts_question_words_in_sentences_that_say_something() -> None:
    question = "How does Trellis survive a crash?"
    on_topic = addressing(question, "Trellis is built so that a crash costs one step. [1]")
    assert on_topic.question_terms == ("trellis", "surviv", "crash")
    assert on_topic.addressed == ("trellis", "crash")
    assert on_topic.share == pytest.approx(2 / 3)
    assert addressing(question, "Redis carries the event streams. [1]").share == 0.0
    assert addressing(question, "Trellis survives a crash.").share == 0.0  # restates it
    assert addressing("Why?", "Because.").share == 1.0  # nothing to check
