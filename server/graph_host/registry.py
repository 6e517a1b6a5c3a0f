"""GraphRegistry: loads the graphs listed in a `langgraph.json` and compiles them for Trellis.

The file format is the one `langgraph dev` reads: `graphs` maps a graph id to
`./path/to/file.py:variable`, where the variable is a compiled graph, a
`StateGraph`, or a factory. `dependencies` are added to the import path
relative to the config file, and `env` (a mapping or a path to a `.env` file) is
applied before any graph is imported.

A factory is called on every access, as the official server calls it
(`langgraph_api.graph.get_graph`, `_factory_utils`): it takes nothing, a
`RunnableConfig`, a `langgraph_sdk.runtime.ServerRuntime`, or both (by keyword, told
apart by the runtime's annotation); it may be sync or async, and may return an (async)
context manager, entered for the access and exited after it. The runtime is an
execution runtime (with the run's context) when a run executes, a read runtime
otherwise.

A graph that fails to import is logged with its file and error and kept as unavailable:
every access to it raises `GraphUnavailable` naming it and the error, and the other
graphs serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import importlib.util
import inspect
import json
import logging
import os
import sys
import typing
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeAlias

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from langgraph_sdk.auth.types import BaseUser
from langgraph_sdk.runtime import ServerRuntime, _ExecutionRuntime, _ReadRuntime

from server.core.errors import GraphUnavailable
from server.core.store_config import StoreConfig, StoreConfigError, parse_store_config
from server.core.types import Json
from server.graph_host.checkpointer_config import (
    CheckpointerConfig,
    CheckpointerConfigError,
    read_checkpointer,
)

log = logging.getLogger("trellis.graphs")

AnyGraph: TypeAlias = Pregel[Any, Any, Any, Any]  # Any: each graph's own state/context/IO
"""A compiled graph, whatever its state, context, input and output types."""

GraphOrBuilder: TypeAlias = AnyGraph | StateGraph[Any, Any, Any, Any]  # Any: as for AnyGraph
"""What a `langgraph.json` entry names: a compiled graph, or a `StateGraph` to compile."""

Access: TypeAlias = Literal[
    "threads.create_run", "threads.update", "threads.read", "assistants.read"
]
"""Why a graph is wanted; a factory's `ServerRuntime.access_context` (the official names)."""

Factory: TypeAlias = Callable[..., object]
"""A `langgraph.json` entry that builds its graph per access."""

FactoryArgs: TypeAlias = Callable[[RunnableConfig, object], dict[str, object]]
"""How to call a factory: its keyword arguments from the config and the runtime."""

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
    checkpointer: CheckpointerConfig = field(default_factory=CheckpointerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)


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
    try:
        checkpointer = read_checkpointer(raw.get("checkpointer"))
        store = parse_store_config(raw.get("store"))
    except (CheckpointerConfigError, StoreConfigError) as exc:
        raise GraphLoadError(f"{path}: {exc}") from exc
    return GraphConfig(path, graphs, deps, env, auth, raw, checkpointer, store)


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


def _is_runtime(annotation: object) -> bool:
    """Whether a parameter annotation names `ServerRuntime` (bare, parameterized, a concrete
    runtime class or `Annotated[...]`), as `langgraph_api._factory_utils` tells it."""
    if annotation is ServerRuntime:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, _ExecutionRuntime | _ReadRuntime)
    origin = typing.get_origin(annotation)
    if origin is ServerRuntime:
        return True
    args = typing.get_args(annotation)
    return origin is not None and bool(args) and _is_runtime(args[0])


def factory_args(entry: GraphEntry, factory: Factory) -> FactoryArgs:
    """How to call `factory`: none, one (a config, or a runtime if annotated so) or two
    parameters (a config and a runtime, passed by keyword). Anything else is a load error."""
    params = list(inspect.signature(factory).parameters.values())
    try:
        hints = typing.get_type_hints(
            factory,
            localns={"ServerRuntime": ServerRuntime, "RunnableConfig": RunnableConfig},
        )
    except Exception:  # an annotation that does not resolve is just not a runtime
        hints = {}
    runtime = [p.name for p in params if _is_runtime(hints.get(p.name, p.annotation))]
    names = [p.name for p in params]
    if not params:
        return lambda config, rt: {}
    if len(params) == 1:
        name = names[0]
        if runtime:
            return lambda config, rt: {name: rt}
        return lambda config, rt: {name: config}
    if len(params) == 2 and len(runtime) == 1:
        rt_name = runtime[0]
        cfg_name = next(n for n in names if n != rt_name)
        return lambda config, rt: {cfg_name: config, rt_name: rt}
    raise GraphLoadError(
        f"{entry.file}: graph {entry.graph_id!r}: factory {entry.variable!r} must take "
        f"no argument, a config, a `ServerRuntime`, or a config and a `ServerRuntime`; "
        f"it takes {names}"
    )


@contextlib.asynccontextmanager
async def _entered(value: object) -> AsyncIterator[object]:
    """A factory's result, awaited or entered as it needs (`langgraph_api.asyncio`)."""
    if inspect.isawaitable(value):
        value = await value
    if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
        async with value as entered:
            yield entered
    elif hasattr(value, "__enter__") and hasattr(value, "__exit__"):
        with value as entered:
            yield entered
    else:
        yield value


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
    """One served graph: compiled once (`static`), built per access (`factory`), or
    unavailable (`error`). Use it through `open`."""

    graph_id: str
    assistant_id: uuid.UUID
    file: Path
    description: str | None
    checkpointer: BaseCheckpointSaver[str]
    store: BaseStore | None
    static: AnyGraph | None = None
    """The compiled graph, when the entry names a graph rather than a factory."""
    factory: Factory | None = None
    factory_args: FactoryArgs | None = None
    error: str | None = None
    """Why the graph could not be loaded (its file and the exception), if it could not."""
    on_graph: Callable[[AnyGraph], None] | None = None
    """Called with each graph a factory builds (the serializer learns its types)."""

    def unavailable(self, reason: str | None = None) -> GraphUnavailable:
        """The error to answer for this graph, naming it and why it cannot serve."""
        why = f"{reason} ({self.file})" if reason else self.error
        return GraphUnavailable(f"graph {self.graph_id!r} is unavailable: {why}")

    def _runtime(self, access: Access, context: object, user: BaseUser | None) -> object:
        if access == "threads.create_run":
            # copy.copy keeps a dataclass or pydantic context, and copies a dict.
            return _ExecutionRuntime(
                access_context=access,
                user=user,
                store=self.store,  # type: ignore[arg-type]  # None when served without one
                context=copy.copy(context) if context is not None else None,
            )
        return _ReadRuntime(access_context=access, user=user, store=self.store)  # type: ignore[arg-type]

    @contextlib.asynccontextmanager
    async def open(
        self,
        access: Access,
        *,
        config: RunnableConfig | None = None,
        context: object = None,
        user: BaseUser | None = None,
    ) -> AsyncIterator[AnyGraph]:
        """The graph for one access: the compiled one, or the one the factory builds with
        `config` and a runtime for `access` (with `context` when a run executes, and the
        caller as `user` when known), exited after the access. `GraphUnavailable` if it
        could not be loaded or built."""
        if self.static is not None:
            yield self.static
            return
        if self.factory is None or self.factory_args is None:
            raise self.unavailable()
        config = config or {"configurable": {}}
        config.setdefault("configurable", {})
        async with contextlib.AsyncExitStack() as stack:
            entry = GraphEntry(self.graph_id, self.file, getattr(self.factory, "__name__", "?"))
            try:
                kwargs = self.factory_args(config, self._runtime(access, context, user))
                built = await stack.enter_async_context(_entered(self.factory(**kwargs)))
                if not isinstance(built, Pregel | StateGraph):
                    raise GraphLoadError(
                        f"factory returned {type(built).__name__}, expected a compiled graph "
                        "or a StateGraph"
                    )
                graph = _attach(entry, built, self.checkpointer, self.store)
            except Exception as exc:
                log.exception(
                    "graph factory failed",
                    extra={"graph_id": self.graph_id, "file": str(self.file), "access": access},
                )
                raise self.unavailable(f"its factory failed: {type(exc).__name__}: {exc}") from exc
            if self.on_graph is not None:
                self.on_graph(graph)
            yield graph


class GraphRegistry:
    """The graphs a Trellis process serves, keyed by graph id."""

    def __init__(self, graphs: Mapping[str, LoadedGraph], config: GraphConfig) -> None:
        self._graphs = dict(graphs)
        self.config = config

    def http_flag(self, name: str) -> bool:
        """Whether the `http` section of the config sets the flag `name` (`disable_webhooks`)."""
        http = self.config.raw.get("http")
        return isinstance(http, dict) and http.get(name) is True

    @classmethod
    async def load(
        cls,
        path: Path,
        *,
        checkpointer: BaseCheckpointSaver[str],
        store: BaseStore | None = None,
        on_graph: Callable[[AnyGraph], None] | None = None,
    ) -> GraphRegistry:
        """Import and compile the graphs of a `langgraph.json` (factories are only checked:
        they build per access). A broken `langgraph.json` raises; a broken entry is logged
        and kept unavailable. `on_graph` sees every compiled graph, built ones included."""
        config = read_config(path)
        for key, value in config.env.items():
            os.environ.setdefault(key, value)
        add_import_paths(config)
        loaded: dict[str, LoadedGraph] = {}
        for entry in config.graphs:
            graph = LoadedGraph(
                entry.graph_id,
                system_assistant_id(entry.graph_id),
                entry.file,
                entry.description,
                checkpointer,
                store,
                on_graph=on_graph,
            )
            try:
                named = await asyncio.to_thread(_import_variable, entry)
                if isinstance(named, Pregel | StateGraph):
                    graph.static = _attach(entry, named, checkpointer, store)
                    if on_graph is not None:
                        on_graph(graph.static)
                elif callable(named):
                    graph.factory_args = factory_args(entry, named)
                    graph.factory = named
                else:
                    raise GraphLoadError(
                        f"{entry.file}: graph {entry.graph_id!r}: {entry.variable!r} is a "
                        f"{type(named).__name__}, expected a compiled graph, a StateGraph "
                        "or a factory"
                    )
            except Exception as exc:
                graph.error = str(exc) if isinstance(exc, GraphLoadError) else repr(exc)
                log.error(
                    "graph %r could not be loaded from %s; it answers 424 until fixed: %s",
                    entry.graph_id,
                    entry.file,
                    graph.error,
                    extra={"graph_id": entry.graph_id, "file": str(entry.file)},
                )
            loaded[entry.graph_id] = graph
        return cls(loaded, config)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._graphs

    def __iter__(self) -> Iterator[LoadedGraph]:
        return iter(self._graphs.values())

    def get(self, graph_id: str) -> LoadedGraph | None:
        """The loaded graph for `graph_id`, if served (perhaps unavailable: see `open`)."""
        return self._graphs.get(graph_id)

    @property
    def graph_ids(self) -> list[str]:
        """Ids of all served graphs (those that failed to load included)."""
        return list(self._graphs)

    @property
    def available_ids(self) -> list[str]:
        """Ids of the served graphs that loaded (runs may be created on them)."""
        return [graph_id for graph_id, graph in self._graphs.items() if graph.error is None]
