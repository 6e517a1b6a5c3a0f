"""Cancelling with `action=rollback` removes the run and frees its thread in one commit.

`cancel?action=rollback&wait=1` answers once the run row is gone. The thread's state
used to follow in a second transaction, after the final state was read, so a client
could see the run gone and its thread still `busy` (the fault suite caught it once).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from sqlalchemy import text

from server.core.settings import Settings
from server.http.app import create_app
from server.runs import executor as executor_module
from tests.support.servers import serve_in_loop


async def test_the_run_is_never_gone_while_its_thread_is_busy(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings)
    seen: list[tuple[set[str], str]] = []
    read_state = executor_module.latest_state

    async def observe_then_read(graph: Any, thread_id: str, **kwargs: Any) -> Any:
        # What another client sees while the executor reads the state to finish with.
        async with app.state.services.engine.connect() as conn:
            runs = await conn.scalars(
                text("SELECT run_id FROM runs WHERE thread_id = :t"), {"t": thread_id}
            )
            status = await conn.scalar(
                text("SELECT status FROM threads WHERE thread_id = :t"), {"t": thread_id}
            )
        seen.append(({str(run) for run in runs}, str(status)))
        return await read_state(graph, thread_id, **kwargs)

    monkeypatch.setattr(executor_module, "latest_state", observe_then_read)
    async with serve_in_loop(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        client = get_client(url=url, api_key=None)
        thread_id = (await client.threads.create())["thread_id"]
        kept = await client.runs.wait(thread_id, "slow", input={"delay": 0})
        seen.clear()
        cancelled = None
        async for part in client.runs.stream(
            thread_id, "slow", input={"delay": 0.5}, stream_mode="updates"
        ):
            if part.event == "metadata":
                run_id = part.data["run_id"]
            elif part.event == "updates" and cancelled is None:  # mid-run: s1 is done
                cancelled = await http.post(
                    f"/threads/{thread_id}/runs/{run_id}/cancel",
                    params={"wait": 1, "action": "rollback"},
                )
        await client.http.client.aclose()
        assert cancelled is not None
        assert cancelled.status_code == 200, cancelled.text
        assert (await http.get(f"/threads/{thread_id}/runs/{run_id}")).status_code == 404
        thread = (await http.get(f"/threads/{thread_id}")).json()
        assert thread["status"] == "idle"
        assert thread["values"] == kept  # back to the state before the cancelled run
    assert seen, "the executor read the thread's state to finish with"
    assert all(run_id in runs or status != "busy" for runs, status in seen), seen
