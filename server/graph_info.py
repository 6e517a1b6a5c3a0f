"""What a graph looks like from outside: its drawing, JSON Schemas and subgraphs (for Studio)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

from langgraph.pregel import Pregel
from pydantic import TypeAdapter

from server.serde import to_jsonable

Graph = Pregel[Any, Any, Any, Any]


async def draw(graph: Graph, *, xray: int | bool) -> dict[str, Any]:
    """Nodes and edges (`conditional` marked), subgraphs expanded to `xray` levels."""
    drawable = await graph.aget_graph(xray=xray)
    data: dict[str, Any] = to_jsonable(drawable.to_json())
    return data


def _quiet(build: Callable[[], Any]) -> Any:
    """Call a schema builder, treating deprecation noise and unsupported schemas as absent."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return to_jsonable(build())
        except Exception:
            return None


def _state_schema(graph: Graph) -> Any:
    builder = getattr(graph, "builder", None)
    state = getattr(builder, "state_schema", None)
    if state is None:
        return _quiet(graph.get_output_jsonschema)
    schema = _quiet(lambda: TypeAdapter(state).json_schema())
    return schema if schema is not None else _quiet(graph.get_output_jsonschema)


def schemas(graph: Graph) -> dict[str, Any]:
    """`input_schema`, `output_schema`, `state_schema`, `config_schema`, `context_schema`."""
    return {
        "input_schema": _quiet(graph.get_input_jsonschema),
        "output_schema": _quiet(graph.get_output_jsonschema),
        "state_schema": _state_schema(graph),
        "config_schema": _quiet(graph.get_config_jsonschema),
        "context_schema": _quiet(graph.get_context_jsonschema),
    }


async def subgraphs(graph: Graph, *, namespace: str | None, recurse: bool) -> dict[str, Any]:
    """Schemas of each subgraph keyed by its namespace."""
    out: dict[str, Any] = {}
    async for ns, sub in graph.aget_subgraphs(namespace=namespace, recurse=recurse):
        out[ns] = {"graph_id": ns, **schemas(cast(Graph, sub))}
    return out
