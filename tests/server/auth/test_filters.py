"""Authorization filters as JSONB containment: translation, merging and matching."""

from __future__ import annotations

import pytest

from server.auth.filters import UnsupportedFilter, contains, merge, to_containment


def test_plain_eq_and_contains_operators() -> None:
    assert to_containment({"owner": "u1"}) == {"owner": "u1"}
    assert to_containment({"owner": {"$eq": "u1"}}) == {"owner": "u1"}
    assert to_containment({"tags": {"$contains": "a"}}) == {"tags": ["a"]}
    assert to_containment({"tags": {"$contains": ["a", "b"]}}) == {"tags": ["a", "b"]}
    assert to_containment({"nested": {"k": 1}}) == {"nested": {"k": 1}}


def test_unknown_operators_fail_closed() -> None:
    with pytest.raises(UnsupportedFilter):
        to_containment({"n": {"$gt": 3}})
    with pytest.raises(UnsupportedFilter):
        to_containment({"n": {"$eq": 1, "$ne": 2}})


def test_merge_keeps_both_conditions() -> None:
    assert merge({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}
    assert merge({"a": {"x": 1}}, {"a": {"y": 2}}) == {"a": {"x": 1, "y": 2}}
    assert merge({"t": ["a"]}, {"t": ["a", "b"]}) == {"t": ["a", "b"]}
    assert merge({"a": 1}, {"a": 1}) == {"a": 1}


def test_merge_of_incompatible_conditions_is_none() -> None:
    assert merge({"a": 1}, {"a": 2}) is None
    assert merge({"a": {"x": 1}}, {"a": {"x": 2}}) is None
    assert merge({"a": True}, {"a": 1}) is None  # JSON true is not 1


@pytest.mark.parametrize(
    ("document", "wanted", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, True),
        ({"t": ["a", "b", "c"]}, {"t": ["c", "a"]}, True),
        ({"t": ["a"]}, {"t": ["a", "b"]}, False),
        ({"t": "a"}, {"t": ["a"]}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": 1.0}, {"a": 1}, True),
        ({"a": None}, {"a": None}, True),
        (None, {"a": 1}, False),
        ({"a": 1}, {}, True),
    ],
)
def test_contains_is_jsonb_containment(document: object, wanted: object, expected: bool) -> None:
    assert contains(document, wanted) is expected
