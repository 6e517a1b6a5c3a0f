"""The official `langgraph-sdk` drives Trellis through the whole LangGraph Server API surface."""

from __future__ import annotations

import asyncio
import uuid
from itertools import pairwise

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.support.api import NAMESPACE_GRAPH, wait_for_log, wait_for_run

# -- interrupt, resume, history, runs ------------------------------------------------------------


async def test_stream_to_interrupt_resume_history_and_runs(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    assert thread["status"] == "idle"
    parts = [
        p
        async for p in client.runs.stream(
            tid, "approval", input={"topic": "cats"}, stream_mode=["updates", "values"]
        )
    ]
    assert parts[0].event == "metadata"
    first_run_id = parts[0].data["run_id"]
    assert {p.event for p in parts[1:]} == {"updates", "values"}
    updates = [p.data for p in parts if p.event == "updates"]
    assert updates[0] == {"draft": {"draft": "Draft about cats", "log": ["draft"]}}
    assert "__interrupt__" in updates[-1]
    assert updates[-1]["__interrupt__"][0]["value"]["question"] == "Approve this draft?"

    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert thread["values"]["draft"] == "Draft about cats"
    [(task_id, pending)] = thread["interrupts"].items()
    assert pending[0]["value"]["draft"] == "Draft about cats"

    state = await client.threads.get_state(tid)
    assert state["next"] == ["review"]
    assert state["interrupts"][0]["value"] == {
        "question": "Approve this draft?",
        "draft": "Draft about cats",
    }
    assert state["tasks"][0]["name"] == "review"
    assert state["tasks"][0]["id"] == task_id
    assert state["tasks"][0]["interrupts"][0]["id"] == state["interrupts"][0]["id"]

    resumed = [
        p
        async for p in client.runs.stream(
            tid,
            "approval",
            command={"resume": {"approved": True, "feedback": "ship it"}},
            stream_mode="values",
        )
    ]
    final = resumed[-1].data
    assert final["approved"] is True
    assert final["feedback"] == "ship it"
    assert final["log"] == ["draft", "review", "publish"]
    assert (await client.threads.get(tid))["status"] == "idle"

    history = await client.threads.get_history(tid, limit=50)
    assert len(history) >= 5
    steps = [h["metadata"]["step"] for h in history]
    assert steps == sorted(steps, reverse=True)
    assert len(set(steps)) == len(steps), steps
    assert history[0]["next"] == []
    assert history[0]["values"]["log"] == ["draft", "review", "publish"]
    assert history[-1]["metadata"]["source"] == "input"
    assert history[-1]["parent_checkpoint"] is None
    for newer, older in pairwise(history):
        assert newer["parent_checkpoint"]["checkpoint_id"] == older["checkpoint"]["checkpoint_id"]
        assert newer["parent_checkpoint_id"] == older["checkpoint_id"]
        assert newer["checkpoint"]["thread_id"] == tid
    # `before` pages backwards through the same list
    older = await client.threads.get_history(tid, before=history[1]["checkpoint"], limit=50)
    assert [h["checkpoint_id"] for h in older] == [h["checkpoint_id"] for h in history[2:]]

    runs = await client.runs.list(tid)
    assert [r["status"] for r in runs] == ["success", "success"]
    assert runs[1]["run_id"] == first_run_id
    assert runs[0]["run_id"] != first_run_id
    assert all(r["thread_id"] == tid for r in runs)


async def test_command_update_on_interrupted_thread(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input={"topic": "owls"})
    result = await client.runs.wait(tid, "approval", command={"update": {"feedback": "prefilled"}})
    # The update lands; the interrupt is still pending.
    assert result["feedback"] == "prefilled"
    assert "__interrupt__" in result
    state = await client.threads.get_state(tid)
    assert state["next"] == ["review"]
    assert state["values"]["feedback"] == "prefilled"
    assert (await client.threads.get(tid))["status"] == "interrupted"
    done = await client.runs.wait(tid, "approval", command={"resume": {"approved": False}})
    assert done["approved"] is False
    assert done["log"] == ["draft", "review", "publish"]


async def test_command_goto_and_update_with_goto(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    assert (await client.runs.wait(tid, "echo", input={"text": "a"}))["text"] == "a!"
    again = await client.runs.wait(tid, "echo", command={"goto": "second"})
    assert again["text"] == "a!!"
    assert again["steps"] == ["first", "second", "second"]
    jumped = await client.runs.wait(
        tid, "echo", command={"update": {"text": "z"}, "goto": "second"}
    )
    assert jumped["text"] == "z!"
    assert jumped["steps"] == ["first", "second", "second", "second"]


@pytest.mark.parametrize(
    ("option", "nodes"), [("interrupt_before", ["second"]), ("interrupt_after", ["first"])]
)
async def test_static_interrupts_then_continue(
    client: LangGraphClient, option: str, nodes: list[str]
) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "echo", input={"text": "hi"}, **{option: nodes})  # type: ignore[arg-type]
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    state = await client.threads.get_state(tid)
    assert state["next"] == ["second"]
    assert state["values"] == {"text": "hi", "steps": ["first"]}
    finished = await client.runs.wait(tid, "echo", input=None)
    assert finished == {"text": "hi!", "steps": ["first", "second"]}
    assert (await client.threads.get(tid))["status"] == "idle"
    assert (await client.threads.get_state(tid))["next"] == []


async def test_run_from_earlier_checkpoint_forks_with_new_input(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "echo", input={"text": "a"})
    history = await client.threads.get_history(tid, limit=50)
    original_head = history[0]["checkpoint_id"]
    first_input = next(h for h in history if h["metadata"]["source"] == "input")
    forked = await client.runs.wait(
        tid, "echo", input={"text": "b"}, checkpoint_id=first_input["checkpoint_id"]
    )
    # From the empty first checkpoint, the steps do not accumulate the first run's.
    assert forked == {"text": "b!", "steps": ["first", "second"]}
    # The original branch is still there, unchanged.
    original = await client.threads.get_state(tid, checkpoint_id=original_head)
    assert original["values"] == {"text": "a!", "steps": ["first", "second"]}
    # Without a checkpoint the next run continues the latest (forked) branch.
    latest = await client.runs.wait(tid, "echo", input={"text": "c"})
    assert latest["steps"] == ["first", "second", "first", "second"]


async def test_resume_from_an_earlier_interrupt_checkpoint(client: LangGraphClient) -> None:
    """Studio's "re-run from here" on an interrupt: fork the old checkpoint, resume differently.

    Resuming the old checkpoint in place would replay the answer already recorded there
    (LangGraph reuses a task's stored writes); a `__copy__` fork starts a clean branch.
    """
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input={"topic": "bees"})
    at_interrupt = (await client.threads.get_state(tid))["checkpoint_id"]
    approved = await client.runs.wait(tid, "approval", command={"resume": {"approved": True}})
    assert approved["approved"] is True
    assert (await client.threads.get(tid))["status"] == "idle"
    fork = await client.threads.update_state(
        tid, None, as_node="__copy__", checkpoint_id=at_interrupt
    )
    assert (await client.threads.get(tid))["status"] == "interrupted"
    # The thread was idle before the fork; the resume names the fork's checkpoint.
    rejected = await client.runs.wait(
        tid,
        "approval",
        command={"resume": {"approved": False, "feedback": "no"}},
        checkpoint_id=fork["checkpoint_id"],
    )
    assert rejected["approved"] is False
    assert rejected["feedback"] == "no"
    assert rejected["log"] == ["draft", "review", "publish"]
    # The original branch still holds the first answer.
    history = await client.threads.get_history(tid, limit=50)
    assert any(h["values"].get("approved") is True for h in history)


async def test_if_not_exists_create_and_reject(client: LangGraphClient) -> None:
    tid = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await client.runs.wait(tid, "echo", input={"text": "x"})
    assert caught.value.response.status_code == 404
    result = await client.runs.wait(tid, "echo", input={"text": "x"}, if_not_exists="create")
    assert result == {"text": "x!", "steps": ["first", "second"]}
    thread = await client.threads.get(tid)
    assert thread["thread_id"] == tid
    assert thread["status"] == "idle"
    assert thread["values"]["text"] == "x!"


async def test_stateless_stream_and_wait(client: LangGraphClient) -> None:
    before = await client.threads.count()
    result = await client.runs.wait(None, "echo", input={"text": "s"})
    assert result == {"text": "s!", "steps": ["first", "second"]}
    parts = [
        p
        async for p in client.runs.stream(None, "echo", input={"text": "t"}, stream_mode="updates")
    ]
    assert parts[0].event == "metadata"
    assert [p.data for p in parts[1:]] == [
        {"first": {"steps": ["first"]}},
        {"second": {"text": "t!", "steps": ["second"]}},
    ]
    # Temporary threads are deleted once their run ends (on_completion defaults to delete).
    await asyncio.sleep(0.2)
    assert await client.threads.count() == before


async def test_background_run_join_get_delete(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "echo", input={"text": "bg"}, metadata={"who": "test"})
    assert run["thread_id"] == tid
    assert run["status"] in ("pending", "running", "success")
    assert run["metadata"] == {"who": "test"}
    joined = await client.runs.join(tid, run["run_id"])
    assert joined == {"text": "bg!", "steps": ["first", "second"]}
    got = await client.runs.get(tid, run["run_id"])
    assert got["status"] == "success"
    assert got["run_id"] == run["run_id"]
    await client.runs.delete(tid, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])
    assert await client.runs.list(tid) == []
    # The run's checkpoints stay with the thread.
    assert (await client.threads.get_state(tid))["values"]["text"] == "bg!"


async def test_cancel_long_run_with_wait(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 1.0})
    await wait_for_run(client, tid, run["run_id"], {"running"})
    await wait_for_log(client, tid, 1)
    cancelled = await client.runs.cancel(tid, run["run_id"], wait=True)
    assert cancelled["status"] == "interrupted"
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle"
    log = (await client.threads.get_state(tid))["values"]["log"]
    assert 1 <= len(log) < 4
    # It really stopped: nothing more is written afterwards.
    await asyncio.sleep(1.2)
    assert (await client.threads.get_state(tid))["values"]["log"] == log


async def test_reject_on_busy_thread_is_409(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "slow", input={"delay": 0.5})
    with pytest.raises(ConflictError) as caught:
        await client.runs.create(tid, "echo", input={"text": "no"}, multitask_strategy="reject")
    assert caught.value.response.status_code == 409
    assert len(await client.runs.list(tid)) == 1
    await client.runs.cancel(tid, run["run_id"], wait=True)


async def test_enqueue_runs_in_order(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "slow", input={"delay": 0.05, "tags": ["A"]})
    second = await client.runs.create(
        tid, "slow", input={"delay": 0.05, "tags": ["B"]}, multitask_strategy="enqueue"
    )
    third = await client.runs.create(tid, "slow", input={"delay": 0.05, "tags": ["C"]})
    final = await client.runs.join(tid, third["run_id"])
    assert final["tags"] == ["A", "B", "C"]
    assert final["log"] == ["s1", "s2", "s3", "s4"] * 3
    runs = await client.runs.list(tid)
    assert [r["run_id"] for r in runs] == [third["run_id"], second["run_id"], first["run_id"]]
    assert {r["status"] for r in runs} == {"success"}
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_thread_copy_is_independent(client: LangGraphClient) -> None:
    tid = (await client.threads.create(metadata={"origin": "copy-test"}))["thread_id"]
    await client.runs.wait(tid, "echo", input={"text": "a"})
    copy = await client.threads.copy(tid)
    cid = copy["thread_id"]
    assert cid != tid
    assert copy["metadata"]["origin"] == "copy-test"
    original_state = await client.threads.get_state(tid)
    copied_state = await client.threads.get_state(cid)
    assert copied_state["values"] == original_state["values"]
    assert copied_state["next"] == original_state["next"]
    original_history = await client.threads.get_history(tid, limit=50)
    copied_history = await client.threads.get_history(cid, limit=50)
    assert [h["checkpoint_id"] for h in copied_history] == [
        h["checkpoint_id"] for h in original_history
    ]
    assert {h["checkpoint"]["thread_id"] for h in copied_history} == {cid}

    assert (await client.runs.wait(cid, "echo", input={"text": "b"}))["text"] == "b!"
    assert (await client.threads.get_state(tid))["values"]["text"] == "a!"
    assert len(await client.threads.get_history(tid, limit=50)) == len(original_history)
    await client.runs.wait(tid, "echo", input={"text": "c"})
    assert (await client.threads.get_state(cid))["values"]["text"] == "b!"


async def test_thread_delete_removes_checkpoints(client: LangGraphClient) -> None:
    tid = str(uuid.uuid4())
    await client.threads.create(thread_id=tid)
    await client.runs.wait(tid, "echo", input={"text": "old"})
    assert len(await client.threads.get_history(tid)) > 0
    await client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
    with pytest.raises(NotFoundError):
        await client.threads.get_state(tid)
    recreated = await client.threads.create(thread_id=tid)
    assert recreated["thread_id"] == tid
    assert recreated["values"] in ({}, None)
    state = await client.threads.get_state(tid)
    assert state["values"] == {}
    assert state["checkpoint"] is None
    assert await client.threads.get_history(tid) == []
    # A run on the recreated thread starts from nothing.
    fresh = await client.runs.wait(tid, "echo", input={"text": "new"})
    assert fresh == {"text": "new!", "steps": ["first", "second"]}


async def test_thread_create_if_exists(client: LangGraphClient) -> None:
    tid = str(uuid.uuid4())
    created = await client.threads.create(thread_id=tid, metadata={"v": 1})
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=tid, metadata={"v": 2})
    again = await client.threads.create(thread_id=tid, metadata={"v": 2}, if_exists="do_nothing")
    assert again["thread_id"] == tid
    assert again["metadata"] == created["metadata"] == {"v": 1}


async def test_threads_search_and_count(client: LangGraphClient) -> None:
    suite = uuid.uuid4().hex
    red1 = await client.threads.create(metadata={"suite": suite, "color": "red"})
    red2 = await client.threads.create(metadata={"suite": suite, "color": "red"})
    blue = await client.threads.create(metadata={"suite": suite, "color": "blue", "n": 3})
    await client.runs.wait(red2["thread_id"], "approval", input={"topic": "search"})

    found = await client.threads.search(metadata={"suite": suite}, limit=100)
    assert {t["thread_id"] for t in found} == {
        red1["thread_id"],
        red2["thread_id"],
        blue["thread_id"],
    }
    reds = await client.threads.search(metadata={"suite": suite, "color": "red"})
    assert {t["thread_id"] for t in reds} == {red1["thread_id"], red2["thread_id"]}
    numbered = await client.threads.search(metadata={"suite": suite, "n": 3})
    assert [t["thread_id"] for t in numbered] == [blue["thread_id"]]
    interrupted = await client.threads.search(metadata={"suite": suite}, status="interrupted")
    assert [t["thread_id"] for t in interrupted] == [red2["thread_id"]]
    idle = await client.threads.search(metadata={"suite": suite}, status="idle")
    assert {t["thread_id"] for t in idle} == {red1["thread_id"], blue["thread_id"]}
    assert await client.threads.search(metadata={"suite": suite, "color": "green"}) == []
    page = await client.threads.search(metadata={"suite": suite}, limit=2, offset=0)
    rest = await client.threads.search(metadata={"suite": suite}, limit=2, offset=2)
    assert len(page) == 2
    assert len(rest) == 1
    assert {t["thread_id"] for t in page + rest} == {t["thread_id"] for t in found}
    by_values = await client.threads.search(values={"topic": "search"}, metadata={"suite": suite})
    assert [t["thread_id"] for t in by_values] == [red2["thread_id"]]

    assert await client.threads.count(metadata={"suite": suite}) == 3
    assert await client.threads.count(metadata={"suite": suite, "color": "red"}) == 2
    assert await client.threads.count(metadata={"suite": suite}, status="interrupted") == 1
    assert await client.threads.count(metadata={"suite": suite}, status="error") == 0


async def test_update_state_as_node_and_fork_with_copy(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input={"topic": "cats"})
    before = await client.threads.get_history(tid, limit=50)

    updated = await client.threads.update_state(tid, {"draft": "Edited by hand"}, as_node="draft")
    assert updated["checkpoint"]["thread_id"] == tid
    assert updated["checkpoint_id"] == updated["checkpoint"]["checkpoint_id"]
    state = await client.threads.get_state(tid)
    assert state["checkpoint_id"] == updated["checkpoint_id"]
    assert state["values"]["draft"] == "Edited by hand"
    assert state["metadata"]["source"] == "update"
    assert state["next"] == ["review"]
    assert (await client.threads.get(tid))["values"]["draft"] == "Edited by hand"
    assert len(await client.threads.get_history(tid, limit=50)) == len(before) + 1

    # Fork from the checkpoint where `draft` was about to run ("re-run from here").
    at_draft = next(h for h in before if h["next"] == ["draft"])
    forked = await client.threads.update_state(
        tid, None, as_node="__copy__", checkpoint_id=at_draft["checkpoint_id"]
    )
    head = (await client.threads.get_history(tid, limit=1))[0]
    assert head["checkpoint_id"] == forked["checkpoint_id"]
    # LangGraph labels a `__copy__` fork `source: "fork"`.
    assert head["metadata"]["source"] == "fork"
    assert head["next"] == ["draft"]
    assert head["values"] == at_draft["values"]
    # `__copy__` makes a sibling of the copied checkpoint: same parent, new id.
    assert head["parent_checkpoint_id"] == at_draft["parent_checkpoint_id"]
    assert head["checkpoint_id"] != at_draft["checkpoint_id"]
    # Continuing from the fork runs `draft` again, undoing the hand edit.
    again = await client.runs.wait(tid, "approval", input=None)
    assert again["draft"] == "Draft about cats"
    assert "__interrupt__" in again
    assert (await client.threads.get(tid))["status"] == "interrupted"


# -- assistants ----------------------------------------------------------------------------------


async def test_system_assistants(client: LangGraphClient) -> None:
    found = await client.assistants.search(graph_id="approval", metadata={"created_by": "system"})
    assert len(found) == 1
    system = found[0]
    assert system["assistant_id"] == str(uuid.uuid5(uuid.UUID(NAMESPACE_GRAPH), "approval"))
    assert system["metadata"]["created_by"] == "system"
    assert system["graph_id"] == "approval"
    by_graph_id = await client.assistants.get("approval")
    assert by_graph_id["assistant_id"] == system["assistant_id"]
    every = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    assert {a["graph_id"] for a in every} >= {
        "approval",
        "echo",
        "echo_factory",
        "slow",
        "chat",
        "nested",
        "branch",
    }
    for assistant in every:
        assert assistant["assistant_id"] == str(
            uuid.uuid5(uuid.UUID(NAMESPACE_GRAPH), assistant["graph_id"])
        )
    # The graph id works wherever an assistant id does.
    assert (await client.assistants.get_schemas("echo"))["graph_id"] == "echo"
    assert (await client.assistants.get_graph("echo"))["nodes"]
    versions = await client.assistants.get_versions("echo")
    assert versions[0]["version"] == 1
    result = await client.runs.wait(None, system["assistant_id"], input={"topic": "x"})
    assert "__interrupt__" in result


async def test_factory_graph_runs(client: LangGraphClient) -> None:
    result = await client.runs.wait(None, "echo_factory", input={"text": "f"})
    assert result == {"text": "f!", "steps": ["first", "second"]}


async def test_assistant_lifecycle(client: LangGraphClient) -> None:
    suite = uuid.uuid4().hex
    aid = str(uuid.uuid4())
    created = await client.assistants.create(
        "echo",
        config={"tags": ["one"]},
        assistant_id=aid,
        metadata={"suite": suite, "tier": "gold"},
        name="first name",
        description="first",
    )
    assert created["assistant_id"] == aid
    assert created["graph_id"] == "echo"
    assert created["version"] == 1
    assert created["name"] == "first name"
    assert created["metadata"] == {"suite": suite, "tier": "gold"}

    with pytest.raises(ConflictError):
        await client.assistants.create("echo", assistant_id=aid, name="clash")
    kept = await client.assistants.create(
        "echo", assistant_id=aid, name="clash", if_exists="do_nothing"
    )
    assert kept["assistant_id"] == aid
    assert kept["name"] == "first name"
    assert kept["version"] == 1

    got = await client.assistants.get(aid)
    assert got["name"] == "first name"

    updated = await client.assistants.update(aid, name="second name", metadata={"tier": "silver"})
    assert updated["version"] == 2
    assert updated["name"] == "second name"
    assert updated["metadata"]["tier"] == "silver"
    assert (await client.assistants.get(aid))["version"] == 2

    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["name"] for v in versions] == ["second name", "first name"]

    latest = await client.assistants.set_latest(aid, 1)
    assert latest["version"] == 1
    assert latest["name"] == "first name"
    current = await client.assistants.get(aid)
    assert current["version"] == 1
    assert current["name"] == "first name"
    assert current["metadata"]["tier"] == "gold"

    other = await client.assistants.create("approval", metadata={"suite": suite, "tier": "lead"})
    mine = await client.assistants.search(metadata={"suite": suite}, limit=100)
    assert {a["assistant_id"] for a in mine} == {aid, other["assistant_id"]}
    gold = await client.assistants.search(metadata={"suite": suite, "tier": "gold"})
    assert [a["assistant_id"] for a in gold] == [aid]
    approval_ones = await client.assistants.search(metadata={"suite": suite}, graph_id="approval")
    assert [a["assistant_id"] for a in approval_ones] == [other["assistant_id"]]
    assert await client.assistants.count(metadata={"suite": suite}) == 2
    assert await client.assistants.count(metadata={"suite": suite}, graph_id="echo") == 1

    # A user assistant runs its graph.
    assert (await client.runs.wait(None, aid, input={"text": "u"}))["text"] == "u!"

    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)
    assert await client.assistants.count(metadata={"suite": suite}) == 1
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await client.runs.wait(None, aid, input={"text": "gone"})
    assert caught.value.response.status_code == 404


async def test_assistant_graph_drawing(client: LangGraphClient) -> None:
    drawn = await client.assistants.get_graph("approval")
    node_ids = {n["id"] for n in drawn["nodes"]}
    assert node_ids == {"__start__", "draft", "review", "publish", "__end__"}
    edges = {(e["source"], e["target"]) for e in drawn["edges"]}
    assert edges == {
        ("__start__", "draft"),
        ("draft", "review"),
        ("review", "publish"),
        ("publish", "__end__"),
    }
    assert not any(e.get("conditional") for e in drawn["edges"])

    branching = await client.assistants.get_graph("branch")
    conditional = {(e["source"], e["target"]) for e in branching["edges"] if e.get("conditional")}
    assert conditional == {("decide", "left"), ("decide", "right")}
    plain = {(e["source"], e["target"]) for e in branching["edges"] if not e.get("conditional")}
    assert ("__start__", "decide") in plain

    nested = await client.assistants.get_graph("nested", xray=True)
    assert any("inner" in n["id"] for n in nested["nodes"])


async def test_assistant_schemas(client: LangGraphClient) -> None:
    schemas = await client.assistants.get_schemas("approval")
    assert schemas["graph_id"] == "approval"
    for key in ("input_schema", "output_schema", "state_schema", "config_schema", "context_schema"):
        assert key in schemas
    assert set(schemas["input_schema"]["properties"]) >= {"topic", "draft", "approved", "log"}
    assert set(schemas["output_schema"]["properties"]) >= {"topic", "approved", "log"}
    assert set(schemas["state_schema"]["properties"]) == {
        "topic",
        "draft",
        "approved",
        "feedback",
        "log",
    }
    assert schemas["state_schema"]["properties"]["log"]["type"] == "array"
    subgraphs = await client.assistants.get_subgraphs("nested")
    assert len(subgraphs) == 1
    [(namespace, sub)] = subgraphs.items()
    assert namespace == "child"
    assert "path" in sub["state_schema"]["properties"]
