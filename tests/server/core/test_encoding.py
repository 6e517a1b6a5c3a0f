"""The JSON policy: what a request may carry so that what is stored can be read back."""

from __future__ import annotations

import pytest

from server.core.encoding import MAX_DEPTH, UnsafeJson, check_json, check_text, parse_json


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("body", "where", "problem"),
    [
        (b'{"junk": "\\ud800", "m": 1}', "body.junk", "lone surrogates"),
        (b'{"a": {"\\udc00": 1}}', "body.a.'\\udc00'", "key: lone surrogates"),
        (b'{"a": ["x", "y\\u0000"]}', "body.a[1]", "NUL"),
        (b'{"a\\u0000": 1}', "body.'a\\x00'", "key: NUL"),
        (b'{"a": NaN}', "body.a", "finite"),
        (b'{"a": 1e999}', "body.a", "finite"),
        (b'{"a": 1e308}', "body.a", "within"),
        (b'{"a": -9.3e18}', "body.a", "within"),
        (b'{"a": 9223372036854775808}', "body.a", "64 bits"),
        (b'{"a": -9223372036854775809}', "body.a", "within"),
        (b"{not json", "body", "not valid JSON"),
        (deep(MAX_DEPTH + 1), "body", f"nested deeper than {MAX_DEPTH}"),
        (deep(5000), "body", "depth limit exceeded"),  # past what the parsers take
    ],
)
def test_refused(body: bytes, where: str, problem: str) -> None:
    with pytest.raises(UnsafeJson) as caught:
        parse_json(body)
    assert caught.value.where.startswith(where), caught.value
    assert problem in caught.value.problem, caught.value


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 9223372036854775807, "b": -9223372036854775807, "c": 9.2e18, "d": 5e-324}',
        b'{"text": "h\\u00e9llo \\ud83d\\ude00", "list": [true, null, 1.5]}',
        deep(MAX_DEPTH),
        b'"a string body"',
    ],
)
def test_accepted(body: bytes) -> None:
    value = parse_json(body)
    check_json(value)  # what the guard let through passes again, unchanged


def test_long_paths_are_cut_in_answers() -> None:
    with pytest.raises(UnsafeJson) as caught:
        check_json({"k" * 1000: "\x00"})
    assert len(caught.value.where) < 100
    with pytest.raises(UnsafeJson) as caught:
        parse_json(deep(MAX_DEPTH + 1))
    assert len(caught.value.loc) < 20


def test_text() -> None:
    check_text("/threads/abc", ("path",))
    with pytest.raises(UnsafeJson, match=r"query\.key: NUL"):
        check_text("a\x00", ("query", "key"))
