"""A run keeps a reference to its final checkpoint, not a copy of the state: `wait` and `join`
read the output from the checkpoint, and answer exactly as when the run stored it whole."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
from langgraph_sdk.client import LangGraphClient
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from server.core.settings import Settings


def _run_row(settings: Settings, run_id: str) -> dict[str, Any]:
    with psycopg.connect(settings.psycopg_url, autocommit=True, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT status, output, checkpoint_id, checkpoint_ns, "
            "pg_column_size(output) AS output_bytes FROM runs WHERE run_id = %s",
            (run_id,),
        ).fetchone()
    assert row is not None
    return row


def _latest_checkpoint(settings: Settings, thread_id: str) -> str:
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT max(checkpoint_id) FROM checkpoints "
            "WHERE thread_id = %s AND checkpoint_ns = ''",
            (thread_id,),
        ).fetchone()
    assert row is not None
    return str(row[0])


async def _wait(client: LangGraphClient, thread_id: str, text: str) -> tuple[str, Any]:
    """A chat turn; returns its run id (from `Content-Location`) and its output."""
    response = await client.http.client.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "chat", "input": {"messages": [{"role": "user", "content": text}]}},
    )
    assert response.status_code == 200, response.text
    run_id = response.headers["content-location"].rsplit("/", 1)[-1]
    return run_id, response.json()


async def test_a_run_stores_a_reference_and_wait_reads_the_checkpoint(
    client: LangGraphClient, settings: Settings
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    outputs = []
    for turn in range(4):
        run_id, output = await _wait(client, thread_id, f"turn {turn}")
        row = _run_row(settings, run_id)
        assert row["status"] == "success"
        assert row["output"] is None  # nothing of the state is copied into the run
        assert row["checkpoint_id"] == _latest_checkpoint(settings, thread_id)
        assert row["checkpoint_ns"] == ""
        state = await client.threads.get_state(thread_id)
        assert output == state["values"]
        assert len(output["messages"]) == 2 * (turn + 1)
        outputs.append((run_id, output))
    # An earlier run answers with its own final state, not the thread's latest.
    for run_id, output in outputs:
        assert await client.runs.join(thread_id, run_id) == output


async def test_a_run_written_before_the_change_answers_from_its_stored_output(
    client: LangGraphClient, settings: Settings
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    run_id, output = await _wait(client, thread_id, "hello")
    legacy = {**output, "from": "the row"}
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE runs SET output = %s, checkpoint_id = NULL WHERE run_id = %s",
            (Jsonb(legacy), run_id),
        )
    assert await client.runs.join(thread_id, run_id) == legacy


async def test_an_interrupted_run_keeps_only_its_interrupts(
    client: LangGraphClient, settings: Settings
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    response = await client.http.client.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "approval", "input": {"topic": "owls"}},
    )
    run_id = response.headers["content-location"].rsplit("/", 1)[-1]
    output = response.json()
    state = await client.threads.get_state(thread_id)
    pending = [{"value": i["value"], "id": i["id"]} for i in state["interrupts"]]
    assert output == {**state["values"], "__interrupt__": pending}
    row = _run_row(settings, run_id)
    assert row["output"] == {"__interrupt__": pending}
    # Resumed, the thread moves on; the interrupted run still answers with its own state.
    await client.runs.wait(thread_id, "approval", command={"resume": {"approved": True}})
    assert await client.runs.join(thread_id, run_id) == output


async def test_a_failed_run_answers_with_its_error(
    client: LangGraphClient, http: httpx.AsyncClient, settings: Settings
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    response = await http.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "approval", "input": {"topic": "explode"}},
    )
    run_id = response.headers["content-location"].rsplit("/", 1)[-1]
    assert response.json() == {
        "__error__": {"error": "ValueError", "message": "the topic exploded"}
    }
    row = _run_row(settings, run_id)
    assert row["checkpoint_id"] is None
    assert row["output"] == response.json()


async def test_run_rows_stay_small_as_the_thread_grows(
    client: LangGraphClient, settings: Settings
) -> None:
    thread_id = str((await client.threads.create())["thread_id"])
    sizes = []
    for turn in range(12):
        run_id, _ = await _wait(client, thread_id, "x" * 1000 + str(turn))
        row = _run_row(settings, run_id)
        sizes.append(row["output_bytes"] or 0)
    assert max(sizes) == 0, sizes


async def test_a_stateless_wait_answers_the_outcome_its_thread_took_away(
    client: LangGraphClient,
) -> None:
    # The temporary thread (and the run's record with it) goes as soon as the run ends,
    # possibly before the waiter reads the record: the outcome is handed to it in memory.
    for _ in range(8):
        failed = await client.http.client.post(
            "/runs/wait", json={"assistant_id": "approval", "input": {"topic": "explode"}}
        )
        assert failed.status_code == 200, failed.text
        assert failed.json() == {
            "__error__": {"error": "ValueError", "message": "the topic exploded"}
        }
        done = await client.http.client.post(
            "/runs/wait", json={"assistant_id": "echo", "input": {"text": "hi"}}
        )
        assert done.status_code == 200, done.text
        assert done.json()["text"] == "hi!"
