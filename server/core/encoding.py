"""JSON encoding of LangGraph values for the wire and for JSONB columns."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any  # Any: to_jsonable's result, below

import orjson
from langchain_core.messages import BaseMessage
from langgraph.types import Command, Interrupt, Send
from pydantic import BaseModel

from server.core.types import JsonValue

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(obj: object) -> object:
    if isinstance(obj, BaseMessage):
        return obj.model_dump()
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, Interrupt):
        return {"value": obj.value, "id": obj.id}
    if isinstance(obj, Send):
        return {"node": obj.node, "arg": obj.arg}
    if isinstance(obj, Command):
        return {
            key: value
            for key, value in {
                "graph": obj.graph,
                "update": obj.update,
                "resume": obj.resume,
                "goto": obj.goto,
            }.items()
            if value not in (None, (), [])
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes | bytearray):
        return obj.decode("utf-8", errors="replace")
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, uuid.UUID | datetime | date | time):
        return str(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, Sequence):
        return list(obj)
    if hasattr(obj, "to_json"):
        return obj.to_json()
    return repr(obj)


def dumps(obj: object) -> bytes:
    """Encode any value a graph may produce as JSON bytes; unknown objects become their repr."""
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def to_jsonable(obj: object) -> Any:  # Any: JSON whose shape each caller knows (a row, a schema)
    """The plain-JSON form of `obj` (dicts, lists, strings, numbers), e.g. for JSONB columns."""
    return orjson.loads(dumps(obj))


def loads(data: bytes | str) -> JsonValue:
    """Decode JSON."""
    value: JsonValue = orjson.loads(data)
    return value


# --- The JSON policy -----------------------------------------------------------------
#
# What a request may carry, checked once at the edge (`BodyGuard` for bodies, path and
# query) so that nothing is stored that Postgres, orjson or the readers cannot give back.

MAX_DEPTH = 100
"""Nesting of arrays and objects in a request body (the body itself is level 1). Stored
values are wrapped a few levels deeper in answers, and orjson refuses past 254 levels."""
MAX_INT = 2**63 - 1
"""Integers are 64-bit signed: what orjson writes and Postgres `bigint` holds."""
MAX_FLOAT = 2.0**63
"""Bound on a float's magnitude: JSONB keeps numbers as decimals and writes an integral one
back without an exponent (1e308 comes back as a 309-digit integer, which orjson refuses)."""
Loc = tuple[str | int, ...]
"""Where a value sits, as in a validation error's `loc`: ("body", "metadata", "a")."""
_MAX_LOC = 16
"""Entries of a `loc` kept in an answer (nesting may be deep), each key cut to `_MAX_KEY`."""
_MAX_KEY = 64


class UnsafeJson(ValueError):
    """A request value outside the JSON policy, at `loc`; `kind` is `json_invalid` when the
    text is not strict JSON (what orjson refuses), else `value_error`."""

    def __init__(self, loc: Loc, problem: str, kind: str = "value_error") -> None:
        cut = tuple(
            k if isinstance(k, int) or len(k) <= _MAX_KEY else k[:_MAX_KEY] + "…" for k in loc
        )
        self.loc: Loc = cut if len(cut) <= _MAX_LOC else (*cut[:_MAX_LOC], "…")
        self.problem = problem
        self.kind = kind
        super().__init__(f"{self.where}: {problem}")

    @property
    def where(self) -> str:
        """`loc` written as a path: `body.metadata.a`, `body.items[0]`."""
        return "".join(
            f"[{k}]" if isinstance(k, int) else (f".{k}" if i else k)
            for i, k in enumerate(self.loc)
        )

    def error(self) -> dict[str, object]:
        """The refusal as one entry of a validation error's `detail` (as FastAPI writes them)."""
        return {"loc": list(self.loc), "msg": self.problem, "type": self.kind}


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored (NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return "NUL characters are not allowed"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogates are not valid text"
    return None


def number_problem(value: float) -> str | None:
    """Why a number cannot be stored and read back as itself, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -MAX_INT <= value <= MAX_INT else "integers must fit in 64 bits"
    if not math.isfinite(value):
        return "numbers must be finite"
    if abs(value) >= MAX_FLOAT:
        return f"numbers must be within ±{MAX_FLOAT:.3g}"
    return None


def check_text(value: str, loc: Loc) -> None:
    """Raise `UnsafeJson` if `value` (a path, a query parameter) breaks the policy."""
    problem = text_problem(value)
    if problem is not None:
        raise UnsafeJson(loc, problem)


def check_json(
    value: object, loc: Loc = ("body",), *, max_depth: int = MAX_DEPTH, kind: str = "value_error"
) -> None:
    """Raise `UnsafeJson` naming the first value of `value` the policy refuses: text with NUL
    or a lone surrogate (keys too), integers beyond 64 bits, non-finite or huge floats, and
    nesting deeper than `max_depth`."""
    if _acceptable(value, max_depth, text=True):
        return
    _refuse(value, loc, max_depth, kind)


def _refuse(value: object, loc: Loc, max_depth: int, kind: str) -> None:
    """The slow walk of `check_json`, which keeps track of where it is."""
    stack: list[tuple[object, Loc]] = [(value, loc)]
    while stack:
        item, at = stack.pop()
        problem: str | None = None
        if isinstance(item, str):
            problem = text_problem(item)
        elif isinstance(item, int | float):
            problem = number_problem(item)
        elif isinstance(item, dict | list):
            if len(at) - len(loc) >= max_depth:
                problem = f"nested deeper than {max_depth} levels"
            elif isinstance(item, dict):
                for key, child in item.items():
                    key_problem = text_problem(str(key))
                    if key_problem is not None:
                        raise UnsafeJson((*at, repr(key)), f"key: {key_problem}", kind)
                    stack.append((child, (*at, key)))
            else:
                stack.extend((child, (*at, i)) for i, child in enumerate(item))
        if problem is not None:
            raise UnsafeJson(at, problem, kind)


def _acceptable(value: object, max_depth: int, *, text: bool) -> bool:
    """Whether the policy takes `value` (`check_json`'s fast walk, which keeps no `loc`);
    `text=False` skips strings, for values orjson parsed from text holding no `\\u0000`."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if text and not all(map(_good_text, item)):
                return False
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            children = (item,)
            depth -= 1
        if depth >= max_depth:
            return False
        for child in children:
            if isinstance(child, str):
                if text and not _good_text(child):
                    return False
            elif isinstance(child, int):
                if not -MAX_INT <= child <= MAX_INT:
                    return False
            elif isinstance(child, float):
                if not -MAX_FLOAT < child < MAX_FLOAT:
                    return False
            elif isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif child is not None:
                return False  # not plain JSON: the slow walk says what is wrong, or lets it be
    return True


def _good_text(value: str) -> bool:
    if "\x00" in value:
        return False
    return value.isascii() or text_problem(value) is None


def parse_json(data: bytes, loc: Loc = ("body",)) -> JsonValue:
    """Parse a request's JSON with the one parser routes and handlers then share (orjson:
    strict UTF-8, no NaN), and apply `check_json`. Raises `UnsafeJson`."""
    try:
        value: JsonValue = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        _locate(data, loc)
        raise UnsafeJson((*loc, exc.pos), f"not valid JSON ({exc.msg})", "json_invalid") from None
    # orjson's strings are valid UTF-8 already; only an escaped NUL can make one unsafe.
    if not _acceptable(value, MAX_DEPTH, text=b"\\u0000" in data):
        _refuse(value, loc, MAX_DEPTH, "value_error")
    return value


def _locate(data: bytes, loc: Loc) -> None:
    """For a body orjson refuses but the lenient parser takes (a lone surrogate, NaN),
    raise `UnsafeJson` naming the field; the body is refused either way."""
    try:
        lenient = json.loads(data)
    except (ValueError, RecursionError):
        return
    check_json(lenient, loc, kind="json_invalid")
