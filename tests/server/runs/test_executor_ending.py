"""A run that is writing its outcome can no longer be stopped.

The heartbeat thread renews leases of the runs an executor holds. When it renews just
after a run's outcome committed, the run is no longer `running`, so the renewal reports
it lost; cancelling the task then (mid-commit) left the run without its end marker and
its stream open until the reader's fallback noticed, seconds later.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph_sdk import get_client

from server.core.settings import Settings
from server.db import run_rows
from server.http.app import create_app
from server.runs import executor as executor_module
from tests.support.servers import serve_in_loop


async def test_a_lost_lease_reported_while_the_outcome_is_written_is_ignored(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings)
    refused: list[bool] = []
    real_finish = run_rows.finish_with_thread

    async def report_lost_first(conn: Any, *args: Any, **kwargs: Any) -> str | None:
        executor = app.state.services.executor
        for run_id in list(executor._tasks):
            refused.append(executor.cancel(run_id, "lost"))
        return await real_finish(conn, *args, **kwargs)

    monkeypatch.setattr(executor_module.run_rows, "finish_with_thread", report_lost_first)
    async with serve_in_loop(app) as url:
        client = get_client(url=url, api_key=None)
        try:
            thread = await client.threads.create()

            async def stream() -> list[Any]:
                return [
                    part
                    async for part in client.runs.stream(
                        thread["thread_id"], "echo", input={"text": "hi"}
                    )
                ]

            parts = await asyncio.wait_for(stream(), 30)
            assert refused == [False]
            assert parts[-1].event == "values"
            assert parts[-1].data["text"].startswith("hi")
            (run,) = await client.runs.list(thread["thread_id"])
            assert run["status"] == "success"
            assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"
        finally:
            await client.http.client.aclose()
