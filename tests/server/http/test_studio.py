"""What LangGraph Studio relies on, through the official client (and raw HTTP for CORS).

The `studio` test graph: `plan` routes conditionally into the compiled subgraph `inner`
(which routes conditionally to `confirm`, an interrupt, or `skip`) or straight to `finish`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

STUDIO = "https://smith.langchain.com"


@pytest.fixture
async def http(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        yield client


def _edges(drawn: dict[str, Any], conditional: bool) -> set[tuple[str, str]]:
    return {
        (e["source"], e["target"])
        for e in drawn["edges"]
        if bool(e.get("conditional")) is conditional
    }


async def test_graph_drawing_with_xray_shows_subgraph_and_conditional_edges(
    client: LangGraphClient,
) -> None:
    flat = await client.assistants.get_graph("studio")
    assert {n["id"] for n in flat["nodes"]} == {"__start__", "plan", "inner", "finish", "__end__"}
    assert _edges(flat, conditional=True) == {("plan", "inner"), ("plan", "finish")}

    xray = await client.assistants.get_graph("studio", xray=1)
    ids = {n["id"] for n in xray["nodes"]}
    assert {"inner:check", "inner:confirm", "inner:skip"} <= ids
    assert "inner" not in ids
    conditional = _edges(xray, conditional=True)
    assert ("inner:check", "inner:confirm") in conditional
    assert ("inner:check", "inner:skip") in conditional
    assert ("plan", "finish") in conditional
    assert ("plan", "inner:check") in conditional
    assert ("inner:confirm", "inner:__end__") in _edges(xray, conditional=False)


async def test_subgraphs_and_schemas(client: LangGraphClient) -> None:
    subgraphs = await client.assistants.get_subgraphs("studio", recurse=True)
    assert list(subgraphs) == ["inner"]
    assert set(subgraphs["inner"]["state_schema"]["properties"]) == {"n", "inner_path", "verdict"}
    only = await client.assistants.get_subgraphs("studio", namespace="inner")
    assert list(only) == ["inner"]

    schemas = await client.assistants.get_schemas("studio")
    assert schemas["graph_id"] == "studio"
    for key in ("input_schema", "output_schema", "state_schema"):
        assert set(schemas[key]["properties"]) == {"n", "path", "verdict"}, key
    assert schemas["state_schema"]["properties"]["path"]["type"] == "array"
    assert "config_schema" in schemas
    assert "context_schema" in schemas


async def test_state_with_subgraphs_and_state_at_a_subgraph_checkpoint(
    client: LangGraphClient,
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "studio", input={"n": 2})

    plain = await client.threads.get_state(thread_id)
    [task] = plain["tasks"]
    assert task["name"] == "inner"
    assert task["state"] is None
    assert task["checkpoint"]["checkpoint_ns"].startswith("inner:")
    assert task["interrupts"][0]["value"] == {"question": "Confirm n=2?"}

    nested = await client.threads.get_state(thread_id, subgraphs=True)
    sub = nested["tasks"][0]["state"]
    assert sub["values"] == {"n": 2, "inner_path": ["check"]}
    assert sub["next"] == ["confirm"]
    assert sub["checkpoint"]["checkpoint_ns"] == task["checkpoint"]["checkpoint_ns"]

    # Studio opens a subgraph through `POST /threads/{id}/state/checkpoint`.
    at_task = await client.threads.get_state(thread_id, checkpoint=task["checkpoint"])
    assert at_task["values"] == sub["values"]
    assert at_task["next"] == ["confirm"]
    parent = await client.threads.get_state(thread_id, checkpoint=plain["checkpoint"])
    assert parent["checkpoint_id"] == plain["checkpoint_id"]
    by_id = await client.threads.get_state(thread_id, checkpoint_id=plain["checkpoint_id"])
    assert by_id["values"] == plain["values"]


async def test_fork_from_a_past_checkpoint_takes_another_branch(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "studio", input={"n": 2})
    original = await client.runs.wait(thread_id, "studio", command={"resume": "yes"})
    assert original["path"] == ["plan", "finish"]
    assert original["verdict"] == "yes"

    history = await client.threads.get_history(thread_id, limit=50)
    before_plan = next(h for h in history if h["next"] == ["plan"])
    assert before_plan["values"]["n"] == 2

    # Edit the past: n=0 makes `plan` route straight to `finish`.
    edited = await client.threads.update_state(
        thread_id, {"n": 0}, checkpoint_id=before_plan["checkpoint_id"]
    )
    head = (await client.threads.get_history(thread_id, limit=1))[0]
    assert head["checkpoint_id"] == edited["checkpoint_id"]
    assert head["parent_checkpoint_id"] == before_plan["checkpoint_id"]
    assert head["metadata"]["source"] == "update"
    assert head["next"] == ["plan"]

    forked = await client.runs.wait(thread_id, "studio", input=None)
    assert forked["n"] == 0
    assert forked["path"] == ["plan", "finish"]
    assert "verdict" not in forked
    assert "__interrupt__" not in forked
    assert forked != original
    # The original branch is still in the history, next to the fork.
    ids = {h["checkpoint_id"] for h in await client.threads.get_history(thread_id, limit=100)}
    assert before_plan["checkpoint_id"] in ids
    assert history[0]["checkpoint_id"] in ids


async def test_copy_fork_and_run_from_a_checkpoint(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "studio", input={"n": 1})
    history = await client.threads.get_history(thread_id, limit=50)
    assert history[0]["values"]["path"] == ["plan", "finish"]
    before_plan = next(h for h in history if h["next"] == ["plan"])

    copied = await client.threads.update_state(
        thread_id, None, as_node="__copy__", checkpoint_id=before_plan["checkpoint_id"]
    )
    head = (await client.threads.get_history(thread_id, limit=1))[0]
    assert head["checkpoint_id"] == copied["checkpoint_id"]
    assert head["metadata"]["source"] == "fork"
    assert head["values"] == before_plan["values"]

    # "Re-run from here": a run that names a checkpoint continues from it.
    again = await client.runs.wait(
        thread_id, "studio", input=None, checkpoint_id=before_plan["checkpoint_id"]
    )
    assert again["path"] == ["plan", "finish"]
    newest = await client.threads.get_history(thread_id, limit=10)
    assert newest[0]["values"]["path"] == ["plan", "finish"]
    steps_after = [h for h in newest if h["parent_checkpoint_id"] == before_plan["checkpoint_id"]]
    assert len(steps_after) >= 2  # the original step, the copy, and the re-run


async def test_cors_preflight_from_studio(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/threads/search",
        headers={
            "Origin": STUDIO,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == STUDIO
    assert response.headers["access-control-allow-private-network"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "x-api-key" in response.headers["access-control-allow-headers"].lower()

    actual = await http.post("/threads/search", json={"limit": 1}, headers={"Origin": STUDIO})
    exposed = {
        h.strip().lower() for h in actual.headers["access-control-expose-headers"].split(",")
    }
    assert {"content-location", "location", "x-pagination-next", "x-pagination-total"} <= exposed

    foreign = await http.options(
        "/threads/search",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert foreign.headers.get("access-control-allow-origin") != "https://evil.example"


async def test_json_sent_as_text_plain(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/threads",
        content=b'{"metadata": {"via": "studio"}}',
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": STUDIO},
    )
    assert created.status_code == 200, created.text
    assert created.json()["metadata"] == {"via": "studio"}
    searched = await http.post(
        "/threads/search",
        content=b'{"metadata": {"via": "studio"}, "limit": 100}',
        headers={"Content-Type": "text/plain"},
    )
    assert created.json()["thread_id"] in {t["thread_id"] for t in searched.json()}
