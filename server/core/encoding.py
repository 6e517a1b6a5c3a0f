"""JSON encoding of LangGraph values for the wire and for JSONB columns."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping, Sequence
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
