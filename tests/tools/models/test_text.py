"""Text helpers: sentence splitting, content words and ``[n]`` citations."""

from __future__ import annotations

import pytest

from tests.tools.models.support import PASSAGES
from tools.models.provider import CitedRef
from tools.models.text import cited_refs, content_words, split_sentences, strip_citations


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
