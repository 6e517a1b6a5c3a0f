"""A run longer than its time limit ends with status `timeout` and frees its slot."""

from __future__ import annotations

import time

import httpx

from tests.support.security import security_settings, trellis

SLOW = {"delay": 0.6}
"""Four steps of 0.6 s: 2.4 s, longer than the limits below."""


async def test_a_run_over_its_time_limit_times_out_and_frees_its_slot(security_db: str) -> None:
    settings = security_settings(security_db, run_timeout_seconds=1.0, run_concurrency=1)
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        thread = (await http.post("/threads", json={})).json()
        runs = f"/threads/{thread['thread_id']}/runs"
        began = time.monotonic()
        waited = await http.post(f"{runs}/wait", json={"assistant_id": "slow", "input": SLOW})
        took = time.monotonic() - began
        assert waited.status_code == 200
        assert waited.json() == {
            "__error__": {
                "error": "RunTimeout",
                "message": "the run exceeded its time limit of 1 s",
            }
        }
        assert 0.9 < took < 2.2
        (run,) = (await http.get(runs)).json()
        assert run["status"] == "timeout"
        assert (await http.get(f"/threads/{thread['thread_id']}")).json()["status"] == "error"
        # The only slot is free again: a quick run completes.
        quick = await http.post(
            "/runs/wait", json={"assistant_id": "echo", "input": {"text": "next"}}
        )
        assert quick.json()["text"] == "next!"


async def test_an_assistant_may_lower_the_time_limit_but_not_raise_it(security_db: str) -> None:
    settings = security_settings(security_db, run_timeout_seconds=30.0)
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        above = await http.post(
            "/assistants",
            json={"graph_id": "slow", "config": {"configurable": {"run_timeout_seconds": 31}}},
        )
        assert above.status_code == 422
        assert above.json()["detail"].startswith("config.configurable.run_timeout_seconds")
        brief = await http.post(
            "/assistants",
            json={"graph_id": "slow", "config": {"configurable": {"run_timeout_seconds": 0.5}}},
        )
        assert brief.status_code == 200
        began = time.monotonic()
        waited = await http.post(
            "/runs/wait", json={"assistant_id": brief.json()["assistant_id"], "input": SLOW}
        )
        assert time.monotonic() - began < 2.0
        assert waited.json()["__error__"]["message"] == ("the run exceeded its time limit of 0.5 s")
        # The same graph without the assistant's limit runs to its end.
        done = await http.post("/runs/wait", json={"assistant_id": "slow", "input": SLOW})
        assert done.json()["log"] == ["s1", "s2", "s3", "s4"]
