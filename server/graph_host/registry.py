"""GraphRegistry: loads the graphs listed in a `langgraph.json` and compiles them for Trellis.

The file format is the one `langgraph dev` reads: `graphs` maps a graph id to
`./path/to/file.py:variable`, where the variable is a compiled graph, a
`StateGraph`, or a factory function returning either (sync or async, taking no
argument or a `RunnableConfig`). `dependencies` are added to the import path
relative to the config file, and `env` (a mapping or a path to a `.env` file) is
applied before any graph is imported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import inspect
import json
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from server.core.types import Json

AnyGraph: TypeAlias = Pregel[Any, Any, Any, Any]  # Any: each graph's own state/context/IO
"""A compiled graph, whatever its state, context, input and output types."""

GraphOrBuilder: TypeAlias = AnyGraph | StateGraph[Any, Any, Any, Any]  # Any: as for AnyGraph
"""What a `langgraph.json` entry names: a compiled graph, or a `StateGraph` to compile."""

NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
"""The namespace the official server derives system assistant ids from; reused for compatibility."""


class GraphLoadError(Exception):
    """A `langgraph.json` or one of its graph entries cannot be loaded; names the file."""


def system_assistant_id(graph_id: str) -> uuid.UUID:
    """The stable assistant id of the system assistant for `graph_id`."""
    return uuid.uuid5(NAMESPACE_GRAPH, graph_id)


@dataclass(frozen=True)
class GraphEntry:
    """One `graphs` entry of a `langgraph.json`."""

    graph_id: str
    file: Path
    variable: str
    description: str | None = None


@dataclass
class GraphConfig:
    """A parsed `langgraph.json`."""

    path: Path
    graphs: list[GraphEntry]
    dependencies: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    auth: Json | None = None
    raw: Json = field(default_factory=dict)


def _parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def read_config(path: Path) -> GraphConfig:
    """Parse and validate a `langgraph.json` without importing any graph."""
    path = path.resolve()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise GraphLoadError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise GraphLoadError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("graphs"), dict) or not raw["graphs"]:
        raise GraphLoadError(f"{path}: expected an object with a non-empty 'graphs' mapping")
    base = path.parent
    graphs: list[GraphEntry] = []
    for graph_id, spec in raw["graphs"].items():
        description = None
        if isinstance(spec, dict):
            description = spec.get("description")
            spec = spec.get("path")
        if not isinstance(spec, str) or ":" not in spec:
            raise GraphLoadError(
                f"{path}: graph {graph_id!r}: expected './file.py:variable', got {spec!r}"
            )
        file_part, _, variable = spec.rpartition(":")
        graphs.append(GraphEntry(graph_id, (base / file_part).resolve(), variable, description))
    env_spec = raw.get("env") or {}
    if isinstance(env_spec, str):
        env_file = (base / env_spec).resolve()
        env = _parse_env_file(env_file) if env_file.exists() else {}
    elif isinstance(env_spec, dict):
        env = {str(k): str(v) for k, v in env_spec.items()}
    else:
        raise GraphLoadError(f"{path}: 'env' must be a mapping or a path to a .env file")
    deps = [(base / d).resolve() for d in raw.get("dependencies", []) if isinstance(d, str)]
    auth = raw.get("auth") if isinstance(raw.get("auth"), dict) else None
    return GraphConfig(path, graphs, deps, env, auth, raw)


def add_import_paths(config: GraphConfig) -> None:
    """Make the config's folder and its `dependencies` importable, as `langgraph dev` does."""
    for dep in [config.path.parent, *config.dependencies]:
        if str(dep) not in sys.path:
            sys.path.insert(0, str(dep))


def load_module(file: Path, *, kind: str, label: str) -> ModuleType:
    """Import a user's Python file (a graph or an auth module) under a private module name.

    Failures raise `GraphLoadError` naming the file, `label` (what it was for) and the problem.
    """
    if not file.is_file():
        raise GraphLoadError(f"{file}: {label}: file not found")
    module_name = f"trellis_user_{kind}_{abs(hash(file)):x}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise GraphLoadError(f"{file}: {label}: not an importable module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise GraphLoadError(
            f"{file}: {label}: import failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _import_variable(entry: GraphEntry) -> object:
    module = load_module(
        entry.file, kind=f"graph_{entry.graph_id}", label=f"graph {entry.graph_id!r}"
    )
    try:
        return getattr(module, entry.variable)
    except AttributeError as exc:
        raise GraphLoadError(
            f"{entry.file}: graph {entry.graph_id!r}: no variable {entry.variable!r} in module"
        ) from exc


async def _resolve(entry: GraphEntry, value: object) -> GraphOrBuilder:
    if isinstance(value, Pregel | StateGraph):
        return value
    if callable(value):
        params = inspect.signature(value).parameters
        result: object = value({"configurable": {}}) if params else value()
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Pregel | StateGraph):
            return result
        raise GraphLoadError(
            f"{entry.file}: graph {entry.graph_id!r}: factory {entry.variable!r} returned "
            f"{type(result).__name__}, expected a compiled graph or a StateGraph"
        )
    raise GraphLoadError(
        f"{entry.file}: graph {entry.graph_id!r}: {entry.variable!r} is a "
        f"{type(value).__name__}, expected a compiled graph, a StateGraph or a factory"
    )


def _attach(
    entry: GraphEntry,
    graph: GraphOrBuilder,
    checkpointer: BaseCheckpointSaver[str],
    store: BaseStore | None,
) -> AnyGraph:
    if isinstance(graph, StateGraph):
        compiled: AnyGraph = graph.compile(
            checkpointer=checkpointer, store=store, name=entry.graph_id
        )
        return compiled
    own = graph.checkpointer
    if isinstance(own, BaseCheckpointSaver):
        raise GraphLoadError(
            f"{entry.file}: graph {entry.graph_id!r} was compiled with its own checkpointer "
            f"({type(own).__name__}); Trellis persists threads in Postgres itself. "
            "Compile the graph without a checkpointer."
        )
    update: dict[str, object] = {"checkpointer": checkpointer}
    if store is not None and graph.store is None:
        update["store"] = store
    attached: AnyGraph = graph.copy(update=update)
    return attached


def context_keys(graph: AnyGraph) -> frozenset[str]:
    """Field names of the graph's context schema (dataclass, pydantic model or TypedDict)."""
    schema = getattr(graph, "context_schema", None)
    if schema is None:
        return frozenset()
    if dataclasses.is_dataclass(schema):
        return frozenset(f.name for f in dataclasses.fields(schema))
    fields = getattr(schema, "model_fields", None) or getattr(schema, "__annotations__", {})
    return frozenset(fields)


@dataclass
class LoadedGraph:
    """A graph ready to run: compiled with Trellis' checkpointer and store."""

    graph_id: str
    assistant_id: uuid.UUID
    graph: AnyGraph
    file: Path
    description: str | None

    @property
    def takes_owner(self) -> bool:
        """Whether the graph's context has an `owner` field, which Trellis fills in itself."""
        return "owner" in context_keys(self.graph)


class GraphRegistry:
    """The graphs a Trellis process serves, keyed by graph id."""

    def __init__(self, graphs: Mapping[str, LoadedGraph], config: GraphConfig) -> None:
        self._graphs = dict(graphs)
        self.config = config

    @classmethod
    async def load(
        cls,
        path: Path,
        *,
        checkpointer: BaseCheckpointSaver[str],
        store: BaseStore | None = None,
    ) -> GraphRegistry:
        """Import and compile every graph of a `langgraph.json`; any broken entry raises."""
        config = read_config(path)
        for key, value in config.env.items():
            os.environ.setdefault(key, value)
        add_import_paths(config)
        loaded: dict[str, LoadedGraph] = {}
        for entry in config.graphs:
            named = await _resolve(entry, await asyncio.to_thread(_import_variable, entry))
            graph = _attach(entry, named, checkpointer, store)
            loaded[entry.graph_id] = LoadedGraph(
                entry.graph_id,
                system_assistant_id(entry.graph_id),
                graph,
                entry.file,
                entry.description,
            )
        return cls(loaded, config)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._graphs

    def __iter__(self) -> Iterator[LoadedGraph]:
        return iter(self._graphs.values())

    def get(self, graph_id: str) -> LoadedGraph | None:
        """The loaded graph for `graph_id`, if served."""
        return self._graphs.get(graph_id)

    @property
    def graph_ids(self) -> list[str]:
        """Ids of all served graphs."""
        return list(self._graphs)
