"""A user's `langgraph.json` as the official server serves it, checked with the official SDK:

- `context_agent` reads `runtime.context.model` from a `Context` dataclass with defaults: a
  run without context (or with `{}`) runs with the defaults, a run's context overrides the
  assistant's, which overrides the defaults (`Runs.put` merges assistant and run context;
  LangGraph builds the dataclass from the mapping);
- `factory_agent` is a `(config, runtime: ServerRuntime)` factory returning an async context
  manager, built per access with the access's runtime (`_factory_utils.invoke_factory`);
- `broken_agent` cannot be imported: the server still starts, serves the others, and the
  broken one answers 424 naming the graph, its file and the error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from server.http.app import create_app
from tests.support.servers import ROOT, scratch_database, serve_in_loop

USER_GRAPHS = ROOT / "tests" / "support" / "user_graphs" / "langgraph.json"
DEFAULT = "anthropic/claude-sonnet-4-5 x10"


@pytest.fixture(scope="module")
def factory_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("factory") / "factory.log"


@pytest.fixture(scope="module")
async def user_server(
    factory_log: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, list[logging.LogRecord]]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.ERROR)
    logging.getLogger("trellis").addHandler(handler)
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_LOG", str(factory_log))
    try:
        with scratch_database() as database_url:
            settings = Settings(
                environment="test",
                database_url=database_url,
                graphs_config=USER_GRAPHS,
                log_level="WARNING",
                rate_limit_enabled=False,
            )
            async with serve_in_loop(create_app(settings)) as url:
                yield url, records
    finally:
        patch.undo()
        logging.getLogger("trellis").removeHandler(handler)


@pytest.fixture
async def sdk(user_server: tuple[str, list[logging.LogRecord]]) -> AsyncIterator[LangGraphClient]:
    lg = get_client(url=user_server[0], api_key=None)
    yield lg
    await lg.http.client.aclose()


@pytest.fixture
async def http(
    user_server: tuple[str, list[logging.LogRecord]],
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=user_server[0], timeout=30) as client:
        yield client


async def test_the_server_starts_and_lists_every_graph(
    sdk: LangGraphClient, user_server: tuple[str, list[logging.LogRecord]]
) -> None:
    found = await sdk.assistants.search(limit=10)
    assert sorted(a["graph_id"] for a in found) == [
        "broken_agent",
        "context_agent",
        "factory_agent",
    ]
    _, records = user_server
    [logged] = [r.getMessage() for r in records if "broken_agent" in r.getMessage()]
    assert "broken_agent.py" in logged
    assert "a_package_nobody_installed" in logged


async def test_context_defaults_apply_without_context(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    tid = thread["thread_id"]
    waited = await sdk.runs.wait(tid, "context_agent", input={"question": "q1"})
    assert waited["answer"] == f"{DEFAULT}: q1"

    waited = await sdk.runs.wait(None, "context_agent", input={"question": "q2"}, context={})
    assert waited["answer"] == f"{DEFAULT}: q2"

    parts = [
        p
        async for p in sdk.runs.stream(
            tid, "context_agent", input={"question": "q3"}, stream_mode="values"
        )
    ]
    assert parts[-1].data["answer"] == f"{DEFAULT}: q3"

    run = await sdk.runs.create(tid, "context_agent", input={"question": "q4"})
    joined = await sdk.runs.join(tid, run["run_id"])
    assert joined["answer"] == f"{DEFAULT}: q4"
    assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "success"

    state = await sdk.threads.get_state(tid)
    assert state["values"]["answer"] == f"{DEFAULT}: q4"


async def test_run_context_over_assistant_context_over_defaults(sdk: LangGraphClient) -> None:
    assistant = await sdk.assistants.create(
        "context_agent", context={"model": "openai/gpt-4.1", "max_search_results": 3}
    )
    out = await sdk.runs.wait(None, assistant["assistant_id"], input={"question": "a"})
    assert out["answer"] == "openai/gpt-4.1 x3: a"

    out = await sdk.runs.wait(
        None,
        assistant["assistant_id"],
        input={"question": "b"},
        context={"model": "local/tiny", "not_in_the_schema": True},
    )
    assert out["answer"] == "local/tiny x3: b"

    out = await sdk.runs.wait(
        None, "context_agent", input={"question": "c"}, context={"max_search_results": 1}
    )
    assert out["answer"] == "anthropic/claude-sonnet-4-5 x1: c"


async def test_schemas_show_the_context_defaults(sdk: LangGraphClient) -> None:
    schemas = await sdk.assistants.get_schemas("context_agent")
    props = schemas["context_schema"]["properties"]
    assert props["model"]["default"] == "anthropic/claude-sonnet-4-5"
    assert props["max_search_results"]["default"] == 10


async def test_a_config_runtime_factory_is_built_per_access(
    sdk: LangGraphClient, factory_log: Path
) -> None:
    thread = await sdk.threads.create()
    tid = thread["thread_id"]
    await asyncio.to_thread(factory_log.write_text, "")

    out = await sdk.runs.wait(tid, "factory_agent", input={"name": "ada"})
    assert out["said"] == "ada"
    assert out["built_for"] == "threads.create_run"
    assert out["built_with"] == "{}"  # the run's context, reaching the factory's runtime
    assert out["built_by"] == "anonymous"  # the run's caller, as the runtime's user

    out = await sdk.runs.wait(
        tid, "factory_agent", input={"name": "bob"}, context={"greeting": "hi"}
    )
    assert out["built_with"] == "{'greeting': 'hi'}"

    state = await sdk.threads.get_state(tid)
    assert state["values"]["said"] == "bob"
    schemas = await sdk.assistants.get_schemas("factory_agent")
    assert schemas["context_schema"]["properties"]["greeting"]["default"] == "hello"
    graph = await sdk.assistants.get_graph("factory_agent")
    assert {n["id"] for n in graph["nodes"]} >= {"respond"}

    lines = (await asyncio.to_thread(factory_log.read_text)).splitlines()
    runs = [line for line in lines if line.startswith("enter threads.create_run")]
    assert runs == ["enter threads.create_run factory_agent"] * 2
    assert "enter threads.read -" in lines
    assert "enter assistants.read factory_agent" in lines
    # Every access that entered the factory's context manager exited it.
    entered = [line.split()[1] for line in lines if line.startswith("enter ")]
    exited = [line.split()[1] for line in lines if line.startswith("exit ")]
    assert sorted(entered) == sorted(exited)


async def test_the_broken_graph_answers_a_clear_error(
    sdk: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await sdk.threads.create()
    for response in (
        await http.post(
            f"/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "broken_agent", "input": {}},
        ),
        await http.post("/runs", json={"assistant_id": "broken_agent", "input": {}}),
        await http.post("/runs/stream", json={"assistant_id": "broken_agent", "input": {}}),
        await http.get("/assistants/broken_agent/schemas"),
        await http.get("/assistants/broken_agent/graph"),
    ):
        assert response.status_code == 424, response.text
        body = response.json()
        assert body["code"] == "graph_unavailable"
        assert "graph 'broken_agent'" in body["detail"]
        assert "broken_agent.py" in body["detail"]
        assert "a_package_nobody_installed" in body["detail"]
    # Nothing was queued for it, and the others still serve.
    assert await sdk.runs.list(thread["thread_id"]) == []
    out = await sdk.runs.wait(None, "context_agent", input={"question": "still"})
    assert out["answer"] == f"{DEFAULT}: still"
