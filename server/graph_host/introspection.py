"""What a graph looks like from outside: its drawing, JSON Schemas and subgraphs (for Studio)."""

from __future__ import annotations

import functools
import operator
import types
import typing
import warnings
from collections.abc import Callable
from typing import Annotated, Literal, NotRequired, Required, Union, cast, get_args, get_origin

from pydantic import TypeAdapter
from typing_extensions import TypedDict, get_type_hints, is_typeddict

from server.core.encoding import to_jsonable
from server.core.types import GraphSchema, JsonObject, Subgraphs
from server.graph_host.registry import AnyGraph


async def draw(graph: AnyGraph, *, xray: int | bool) -> JsonObject:
    """Nodes and edges (`conditional` marked), subgraphs expanded to `xray` levels."""
    drawable = await graph.aget_graph(xray=xray)
    data: JsonObject = to_jsonable(drawable.to_json())
    return data


def _quiet(build: Callable[[], object]) -> JsonObject | None:
    """Call a schema builder, treating deprecation noise and unsupported schemas as absent."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            schema: JsonObject | None = to_jsonable(build())
        except Exception:
            return None
        return schema


def _compatible(tp: object, seen: dict[object, object] | None = None) -> object:
    """`tp` with every `typing.TypedDict` in it rebuilt as a `typing_extensions.TypedDict`.

    Pydantic refuses `typing.TypedDict` before Python 3.12, and graphs (LangGraph's own
    examples included) use it, so their schemas are built from a faithful copy.
    """
    seen = {} if seen is None else seen
    if isinstance(tp, type) and is_typeddict(tp):
        if tp in seen:
            return seen[tp]
        seen[tp] = tp  # a recursive reference stays as it was
        hints = get_type_hints(tp, include_extras=True)
        required = getattr(tp, "__required_keys__", frozenset(hints))
        fields = {}
        for name, hint in hints.items():
            while get_origin(hint) in _REQUIREDNESS:
                hint = get_args(hint)[0]
            wrap = Required if name in required else NotRequired
            fields[name] = wrap[_compatible(hint, seen)]
        copy: type = TypedDict(tp.__name__, fields)  # type: ignore[misc]
        copy.__doc__, copy.__module__ = tp.__doc__, tp.__module__
        seen[tp] = copy
        return copy
    origin, args = get_origin(tp), get_args(tp)
    if origin is None or not args or origin is Literal:
        return tp
    converted = tuple(_compatible(arg, seen) for arg in args)
    if origin is Annotated:
        return Annotated[(converted[0], *getattr(tp, "__metadata__"))]  # noqa: B009
    if origin is Union:
        return Union[converted]  # noqa: UP007 - rebuilding a typing.Union
    if origin is types.UnionType:
        return functools.reduce(operator.or_, converted)
    if isinstance(tp, types.GenericAlias):
        return types.GenericAlias(origin, converted)
    copy_with = getattr(tp, "copy_with", None)
    return copy_with(converted) if copy_with is not None else tp


_REQUIREDNESS: set[object] = {Required, NotRequired, typing.Required, typing.NotRequired}


def _typed_schema(tp: type) -> JsonObject | None:
    """The JSON Schema of a TypedDict (or other type), tolerating `typing.TypedDict`."""
    schema = _quiet(lambda: TypeAdapter(tp).json_schema())
    if schema is None:  # `_compatible` of a class is a class
        schema = _quiet(lambda: TypeAdapter(cast(type, _compatible(tp))).json_schema())
    return schema


def _builder_schema(graph: AnyGraph, build: Callable[[], object], attr: str) -> JsonObject | None:
    """LangGraph's schema, else one built from the graph's TypedDict (see `_compatible`)."""
    schema = _quiet(build)
    if schema is None:
        declared = getattr(getattr(graph, "builder", None), attr, None)
        if declared is not None and is_typeddict(declared):
            schema = _typed_schema(declared)
    return schema


def _state_schema(graph: AnyGraph) -> JsonObject | None:
    builder = getattr(graph, "builder", None)
    state = getattr(builder, "state_schema", None)
    output = _builder_schema(graph, graph.get_output_jsonschema, "output_schema")
    if state is None:
        return output
    schema = _typed_schema(state)
    return schema if schema is not None else output


def schemas(graph: AnyGraph, graph_id: str) -> GraphSchema:
    """`input_schema`, `output_schema`, `state_schema`, `config_schema`, `context_schema`."""
    return {
        "graph_id": graph_id,
        "input_schema": _builder_schema(graph, graph.get_input_jsonschema, "input_schema"),
        "output_schema": _builder_schema(graph, graph.get_output_jsonschema, "output_schema"),
        "state_schema": _state_schema(graph),
        "config_schema": _quiet(graph.get_config_jsonschema),
        "context_schema": _builder_schema(graph, graph.get_context_jsonschema, "context_schema"),
    }


async def subgraphs(graph: AnyGraph, *, namespace: str | None, recurse: bool) -> Subgraphs:
    """Schemas of each subgraph keyed by its namespace."""
    out: Subgraphs = {}
    async for ns, sub in graph.aget_subgraphs(namespace=namespace, recurse=recurse):
        out[ns] = schemas(cast(AnyGraph, sub), ns)
    return out
