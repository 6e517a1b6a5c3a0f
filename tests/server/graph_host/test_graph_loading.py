"""Registry errors: a broken `langgraph.json` raises `GraphLoadError` naming the file and the
problem, and `trellis serve` with one exits non-zero and says why; a broken graph entry is
kept unavailable instead (every access raises `GraphUnavailable` naming the graph, its file
and the problem) while the other entries load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from server.core.errors import GraphUnavailable
from server.graph_host.registry import GraphLoadError, GraphRegistry
from tests.support.servers import NO_RATE_LIMIT_ENV, ROOT

GOOD_GRAPH = """
from typing_extensions import TypedDict
from langgraph.graph import StateGraph, START, END

class S(TypedDict):
    x: int

def node(state: S) -> S:
    return {"x": state["x"] + 1}

builder = StateGraph(S)
builder.add_node("node", node)
builder.add_edge(START, "node")
builder.add_edge("node", END)
"""


def _config(tmp_path: Path, graphs: dict[str, str], files: dict[str, str]) -> Path:
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"dependencies": ["."], "graphs": graphs, "env": {}}))
    return config


async def _load_error(config: Path) -> str:
    """The error of a `langgraph.json` that cannot be read at all."""
    with pytest.raises(GraphLoadError) as caught:
        await GraphRegistry.load(config, checkpointer=InMemorySaver())
    return str(caught.value)


async def _entry_error(config: Path, graph_id: str = "g") -> str:
    """The error a broken entry answers on every access; the registry itself loads."""
    registry = await GraphRegistry.load(config, checkpointer=InMemorySaver())
    assert graph_id in registry.graph_ids
    loaded = registry.get(graph_id)
    assert loaded is not None
    for access in ("threads.create_run", "threads.read", "assistants.read"):
        with pytest.raises(GraphUnavailable) as caught:
            async with loaded.open(access):  # type: ignore[arg-type]
                pytest.fail("a broken graph opened")
        assert caught.value.status == 424
    message = str(caught.value)
    assert f"graph {graph_id!r}" in message
    return message


async def test_a_good_config_loads(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"plain": "./ok_graph.py:graph", "uncompiled": "./ok_graph.py:builder"},
        {"ok_graph.py": GOOD_GRAPH + "graph = builder.compile()\n"},
    )
    registry = await GraphRegistry.load(config, checkpointer=InMemorySaver())
    assert registry.graph_ids == ["plain", "uncompiled"]
    loaded = registry.get("uncompiled")
    assert loaded is not None
    async with loaded.open("threads.create_run") as graph:
        result = await graph.ainvoke({"x": 1}, {"configurable": {"thread_id": "t"}})
    assert result == {"x": 2}


async def test_a_broken_entry_leaves_the_others_serving(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"ok": "./ok_graph.py:builder", "g": "./broken.py:graph"},
        {
            "ok_graph.py": GOOD_GRAPH,
            "broken.py": "import a_module_that_does_not_exist\n",
        },
    )
    message = await _entry_error(config)
    assert "broken.py" in message
    assert "a_module_that_does_not_exist" in message
    registry = await GraphRegistry.load(config, checkpointer=InMemorySaver())
    ok = registry.get("ok")
    assert ok is not None
    assert ok.error is None
    async with ok.open("threads.create_run") as graph:
        assert await graph.ainvoke({"x": 5}, {"configurable": {"thread_id": "t"}}) == {"x": 6}


async def test_missing_file(tmp_path: Path) -> None:
    config = _config(tmp_path, {"g": "./nowhere.py:graph"}, {})
    message = await _entry_error(config)
    assert "nowhere.py" in message
    assert "not found" in message
    assert "'g'" in message


async def test_missing_variable(tmp_path: Path) -> None:
    config = _config(tmp_path, {"g": "./novar.py:graph"}, {"novar.py": GOOD_GRAPH})
    message = await _entry_error(config)
    assert "novar.py" in message
    assert "'graph'" in message
    assert "variable" in message


async def test_module_that_raises_on_import(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"g": "./broken.py:graph"},
        {"broken.py": GOOD_GRAPH + "raise RuntimeError('boom while importing')\n"},
    )
    message = await _entry_error(config)
    assert "broken.py" in message
    assert "RuntimeError" in message
    assert "boom while importing" in message


async def test_module_with_syntax_error(tmp_path: Path) -> None:
    config = _config(tmp_path, {"g": "./syntax.py:graph"}, {"syntax.py": "def oops(:\n"})
    message = await _entry_error(config)
    assert "syntax.py" in message
    assert "SyntaxError" in message


async def test_graph_compiled_with_its_own_checkpointer(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"g": "./own_saver.py:graph"},
        {
            "own_saver.py": GOOD_GRAPH
            + "from langgraph.checkpoint.memory import InMemorySaver\n"
            + "graph = builder.compile(checkpointer=InMemorySaver())\n"
        },
    )
    message = await _entry_error(config)
    assert "own_saver.py" in message
    assert "checkpointer" in message
    assert "InMemorySaver" in message


async def test_variable_that_is_not_a_graph(tmp_path: Path) -> None:
    config = _config(tmp_path, {"g": "./notgraph.py:graph"}, {"notgraph.py": "graph = 42\n"})
    message = await _entry_error(config)
    assert "notgraph.py" in message
    assert "int" in message


async def test_factory_returning_something_else(tmp_path: Path) -> None:
    config = _config(
        tmp_path, {"g": "./factory.py:make"}, {"factory.py": "def make():\n    return 'nope'\n"}
    )
    message = await _entry_error(config)
    assert "factory.py" in message
    assert "str" in message


async def test_invalid_json_and_bad_specs(tmp_path: Path) -> None:
    bad = tmp_path / "langgraph.json"
    bad.write_text("{ this is not json")
    message = await _load_error(bad)
    assert str(bad) in message
    assert "invalid JSON" in message

    bad.write_text(json.dumps({"graphs": {}}))
    assert str(bad) in await _load_error(bad)

    bad.write_text(json.dumps({"graphs": {"g": "no-colon-here"}}))
    message = await _load_error(bad)
    assert str(bad) in message
    assert "'g'" in message

    missing = tmp_path / "absent.json"
    assert str(missing) in await _load_error(missing)


def test_serve_with_a_bad_config_exits_nonzero(tmp_path: Path, database_url: str) -> None:
    bad = tmp_path / "langgraph.json"
    bad.write_text("{ this is not json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--config", str(bad), "--port", "1"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            **NO_RATE_LIMIT_ENV,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        raw, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        raw, _ = proc.communicate()
        pytest.fail(f"trellis serve did not exit on a bad config:\n{raw.decode()}")
    output = raw.decode()
    assert proc.returncode != 0, output
    assert str(bad) in output, output
    assert "invalid JSON" in output, output


FACTORIES = (
    GOOD_GRAPH
    + """
import contextlib
from langchain_core.runnables import RunnableConfig
from langgraph_sdk.runtime import ServerRuntime

SEEN = []

def none():
    return builder.compile()

def config_only(config):
    SEEN.append(("config_only", config["configurable"].get("marker")))
    return builder

async def runtime_only(runtime: ServerRuntime):
    SEEN.append(("runtime_only", runtime.access_context))
    return builder.compile()

def both_sync(runtime: ServerRuntime, config: RunnableConfig):
    SEEN.append(("both_sync", runtime.access_context, config["configurable"].get("marker")))
    return builder.compile()

@contextlib.asynccontextmanager
async def async_cm(config: RunnableConfig, runtime: "ServerRuntime"):
    execution = runtime.execution_runtime
    SEEN.append(("enter", runtime.access_context, execution.context if execution else None))
    yield builder.compile()
    SEEN.append(("exit", runtime.access_context))

@contextlib.contextmanager
def sync_cm():
    SEEN.append(("sync enter",))
    yield builder.compile()
    SEEN.append(("sync exit",))

def three(a, b, c):
    return builder.compile()

def two_configs(a, b):
    return builder.compile()
"""
)


async def test_factories_are_built_per_access_with_their_arguments(tmp_path: Path) -> None:
    names = ["none", "config_only", "runtime_only", "both_sync", "async_cm", "sync_cm"]
    config = _config(
        tmp_path, {n: f"./factories.py:{n}" for n in names}, {"factories.py": FACTORIES}
    )
    registry = await GraphRegistry.load(config, checkpointer=InMemorySaver())
    file = (tmp_path / "factories.py").resolve()

    def seen() -> list[tuple[object, ...]]:
        """What the factories recorded (each graph entry imports its file as its own module)."""
        return [
            item
            for name in names
            for item in sys.modules[f"trellis_user_graph_{name}_{abs(hash(file)):x}"].SEEN
        ]

    assert seen() == [], "factories are not called at startup"
    run_config = {"configurable": {"thread_id": "t", "marker": "m"}}
    for name in names:
        loaded = registry.get(name)
        assert loaded is not None
        assert loaded.error is None, loaded.error
        async with loaded.open("threads.create_run", config=run_config, context={"k": 1}) as graph:
            assert graph.checkpointer is not None, "Trellis' saver is attached"
            assert await graph.ainvoke({"x": 1}, {"configurable": {"thread_id": name}}) == {"x": 2}
        async with loaded.open("threads.read") as graph:
            state = await graph.aget_state({"configurable": {"thread_id": name}})
            assert state.values == {"x": 2}
    assert seen() == [
        ("config_only", "m"),
        ("config_only", None),
        ("runtime_only", "threads.create_run"),
        ("runtime_only", "threads.read"),
        ("both_sync", "threads.create_run", "m"),
        ("both_sync", "threads.read", None),
        ("enter", "threads.create_run", {"k": 1}),
        ("exit", "threads.create_run"),
        ("enter", "threads.read", None),
        ("exit", "threads.read"),
        ("sync enter",),
        ("sync exit",),
        ("sync enter",),
        ("sync exit",),
    ]


async def test_factories_with_parameters_it_cannot_fill_are_load_errors(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"g": "./factories.py:three", "h": "./factories.py:two_configs"},
        {"factories.py": FACTORIES},
    )
    for graph_id in ("g", "h"):
        message = await _entry_error(config, graph_id)
        assert "factories.py" in message
        assert "ServerRuntime" in message


async def test_a_factory_that_raises_answers_unavailable_on_that_access(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"g": "./raising.py:make"},
        {"raising.py": "def make(config):\n    raise ValueError('no API key')\n"},
    )
    message = await _entry_error(config)
    assert "its factory failed: ValueError: no API key" in message
    assert "raising.py" in message
