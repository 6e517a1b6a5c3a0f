"""Every checkpoint read the API makes sees whole values on a thread stored in deltas.

A user's graph (`chat`: `MessagesState`, one node) runs turns through the server, whose
executor stores its messages as deltas; the thread is then read every way a client can:
history (pages and `before`), the state at each checkpoint, an `update_state` as a node,
a fork from an old checkpoint, and a copy of the thread.
"""

from __future__ import annotations

import psycopg
from langgraph_sdk.client import LangGraphClient

TURNS = 8


def contents(values: object) -> list[str]:
    assert isinstance(values, dict)
    return [str(m["content"]) for m in values.get("messages", [])]


def expected(turns: int) -> list[str]:
    return [text for turn in range(turns) for text in (f"q{turn}", "hello there friend")]


async def test_api_reads_of_a_delta_thread(client: LangGraphClient, database_url: str) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    for turn in range(TURNS):
        await client.runs.wait(
            thread_id, "chat", input={"messages": [{"role": "user", "content": f"q{turn}"}]}
        )
    with psycopg.connect(database_url) as conn:
        deltas = conn.execute(
            "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = %s "
            "AND channel = 'messages' AND type LIKE 'trellis.delta|%%'",
            (thread_id,),
        ).fetchone()
    assert deltas is not None
    assert deltas[0] >= TURNS  # the server stored the turns as deltas

    state = await client.threads.get_state(thread_id)
    assert contents(state["values"]) == expected(TURNS)

    history = await client.threads.get_history(thread_id, limit=100)
    assert len(history) == 3 * TURNS  # per turn: the input, the step that takes it, the model
    lengths = [len(contents(s["values"])) for s in history]
    assert lengths == sorted(lengths, reverse=True)
    for past in history[::5]:
        at = await client.threads.get_state(
            thread_id, checkpoint_id=past["checkpoint"]["checkpoint_id"]
        )
        assert at["values"] == past["values"]
    older = await client.threads.get_history(thread_id, limit=4, before=history[10]["checkpoint"])
    assert [s["values"] for s in older] == [s["values"] for s in history[11:15]]

    await client.threads.update_state(
        thread_id, {"messages": [{"role": "ai", "content": "a note"}]}, as_node="model"
    )
    assert contents((await client.threads.get_state(thread_id))["values"]) == [
        *expected(TURNS),
        "a note",
    ]

    copy = await client.threads.copy(thread_id)
    assert contents((await client.threads.get_state(copy["thread_id"]))["values"]) == [
        *expected(TURNS),
        "a note",
    ]

    two_turns = next(s for s in history if contents(s["values"]) == expected(2))
    forked = await client.runs.wait(
        thread_id,
        "chat",
        input={"messages": [{"role": "user", "content": "fork"}]},
        checkpoint_id=two_turns["checkpoint"]["checkpoint_id"],
    )
    assert contents(forked) == [*expected(2), "fork", "hello there friend"]
    await client.runs.wait(
        thread_id, "chat", input={"messages": [{"role": "user", "content": "more"}]}
    )
    assert contents((await client.threads.get_state(thread_id))["values"]) == [
        *expected(2),
        "fork",
        "hello there friend",
        "more",
        "hello there friend",
    ]
