"""The basic flow through the official SDK: create, stream to an interrupt, resume, history."""

from __future__ import annotations

from langgraph_sdk.client import LangGraphClient


async def test_interrupt_and_resume_flow(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    events = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "approval",
            input={"topic": "cats"},
            stream_mode=["updates", "values"],
        )
    ]
    assert events[0].event == "metadata"
    assert any(p.event == "updates" and "__interrupt__" in p.data for p in events)
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["review"]
    assert state["interrupts"][0]["value"]["draft"] == "Draft about cats"

    result = await client.runs.wait(
        thread["thread_id"], "approval", command={"resume": {"approved": True}}
    )
    assert isinstance(result, dict)
    assert result["approved"] is True
    assert result["log"] == ["draft", "review", "publish"]
    history = await client.threads.get_history(thread["thread_id"])
    steps = [h["metadata"]["step"] for h in history]
    assert steps == sorted(steps, reverse=True)
    runs = await client.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["success", "success"]
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"
