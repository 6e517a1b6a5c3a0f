"""Deleting an assistant takes its runs with it (the official server's runs reference their
assistant `ON DELETE CASCADE`); `delete_threads=true` also deletes the threads whose
metadata names it (`Assistants.delete(..., delete_threads=True)`)."""

from __future__ import annotations

import httpx
from langgraph_sdk.client import LangGraphClient


async def test_the_runs_of_a_deleted_assistant_go_with_it(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    mine = await client.assistants.create("echo", name="to-delete")
    other = await client.assistants.create("echo", name="kept")
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, mine["assistant_id"], input={"text": "a"})
    kept = await client.runs.wait(tid, other["assistant_id"], input={"text": "b"})
    assert kept["text"] == "b!"
    slow = await client.assistants.create("slow", name="busy")
    busy_thread = await client.threads.create()
    running = await client.runs.create(
        busy_thread["thread_id"], slow["assistant_id"], input={"delay": 5}
    )
    assert len(await client.runs.list(tid)) == 2

    response = await http.delete(f"/assistants/{mine['assistant_id']}")
    assert response.status_code == 204
    remaining = await client.runs.list(tid)
    assert [r["assistant_id"] for r in remaining] == [other["assistant_id"]]

    # An active run is cancelled, then deleted with its assistant.
    response = await http.delete(f"/assistants/{slow['assistant_id']}")
    assert response.status_code == 204
    assert await client.runs.list(busy_thread["thread_id"]) == []
    gone = await http.get(f"/threads/{busy_thread['thread_id']}/runs/{running['run_id']}")
    assert gone.status_code == 404
    # The thread itself stays, and is no longer busy.
    after = await client.threads.get(busy_thread["thread_id"])
    assert after["status"] != "busy"

    assert (await http.get(f"/assistants/{mine['assistant_id']}")).status_code == 404
    assert (await http.delete(f"/assistants/{mine['assistant_id']}")).status_code == 404


async def test_delete_threads_deletes_the_threads_that_name_the_assistant(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    doomed = await client.assistants.create("echo", name="with-threads")
    other = await client.assistants.create("echo", name="other")
    used = await client.threads.create()
    await client.runs.wait(used["thread_id"], doomed["assistant_id"], input={"text": "x"})
    untouched = await client.threads.create()
    await client.runs.wait(untouched["thread_id"], other["assistant_id"], input={"text": "y"})
    assert (await client.threads.get(used["thread_id"]))["metadata"]["assistant_id"] == (
        doomed["assistant_id"]
    )

    await client.assistants.delete(doomed["assistant_id"], delete_threads=True)

    assert (await http.get(f"/threads/{used['thread_id']}")).status_code == 404
    survivor = await client.threads.get(untouched["thread_id"])
    assert survivor["metadata"]["assistant_id"] == other["assistant_id"]
    assert len(await client.runs.list(untouched["thread_id"])) == 1


async def test_without_delete_threads_the_threads_stay(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    assistant = await client.assistants.create("echo", name="threads-stay")
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"text": "z"})
    await client.assistants.delete(assistant["assistant_id"])
    assert (await http.get(f"/threads/{thread['thread_id']}")).status_code == 200
    assert await client.runs.list(thread["thread_id"]) == []
