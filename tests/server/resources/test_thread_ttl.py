"""Thread TTL, prune and keep-last-N retention, over HTTP with the official SDK.

A server of its own serves the test graphs with a `langgraph.json` `checkpointer.ttl`
(a default TTL, a sweep every 0.6 s), on the session's database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from server.db.engine import create_engine
from server.http.app import create_app
from server.resources.thread_service import ThreadService
from server.resources.thread_sweeper import LOCK_KEY, ThreadSweeper
from tests.support.approvals import decide, pending_approval
from tests.support.rows import rows_per_table
from tests.support.servers import TEST_GRAPHS, serve_in_loop

DEFAULT_TTL = 60.0


def checkpoint_ids(settings: Settings, thread_id: str) -> list[str]:
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '' "
            "ORDER BY checkpoint_id DESC",
            (thread_id,),
        ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture(scope="module")
def ttl_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = json.loads(TEST_GRAPHS.read_text())
    base = TEST_GRAPHS.parent
    raw["dependencies"] = [str(base)]
    raw["graphs"] = {
        name: str(base / spec.split(":")[0]) + ":" + spec.split(":")[1]
        for name, spec in raw["graphs"].items()
    }
    raw["checkpointer"] = {
        "ttl": {
            "strategy": "keep_latest",
            "default_ttl": DEFAULT_TTL,
            "sweep_interval_minutes": 0.01,
            "sweep_limit": 50,
        }
    }
    path = tmp_path_factory.mktemp("ttl") / "langgraph.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module")
async def server_url(settings: Settings, ttl_config: Path) -> AsyncIterator[str]:
    """The suite's server with this module's `langgraph.json` (conftest's `client` and
    `http` speak to it)."""
    own = settings.model_copy(update={"graphs_config": ttl_config})
    async with serve_in_loop(create_app(own)) as url:
        yield url


async def chat(client: LangGraphClient, thread_id: str, turns: int) -> None:
    for turn in range(turns):
        await client.runs.wait(
            thread_id, "chat", input={"messages": [{"role": "user", "content": f"turn {turn}"}]}
        )


async def test_ttl_round_trips_through_the_sdk(client: LangGraphClient) -> None:
    thread = await client.threads.create(ttl={"strategy": "keep_latest", "ttl": 30})
    got: Any = await client.threads.get(thread["thread_id"], include=["ttl"])
    ttl = got["ttl"]
    assert ttl["strategy"] == "keep_latest"
    assert ttl["ttl_minutes"] == 30
    left = datetime.fromisoformat(ttl["expires_at"]).timestamp() - time.time()
    assert 29 * 60 < left <= 30 * 60
    assert "ttl" not in await client.threads.get(thread["thread_id"])

    # An int is `{"ttl": n, "strategy": "delete"}` to the SDK.
    await client.threads.update(thread["thread_id"], metadata={"k": 1}, ttl=5)
    got = await client.threads.get(thread["thread_id"], include=["ttl"])
    assert got["ttl"]["strategy"] == "delete"
    assert got["ttl"]["ttl_minutes"] == 5
    assert got["metadata"]["k"] == 1
    left = datetime.fromisoformat(got["ttl"]["expires_at"]).timestamp() - time.time()
    assert 4 * 60 < left <= 5 * 60

    # A fractional TTL, and a thread without one of its own gets the default.
    fractional = await client.threads.create(ttl={"ttl": 0.5})
    got = await client.threads.get(fractional["thread_id"], include=["ttl"])
    assert got["ttl"]["ttl_minutes"] == 0.5
    assert got["ttl"]["strategy"] == "delete"
    plain = await client.threads.create()
    got = await client.threads.get(plain["thread_id"], include=["ttl"])
    assert got["ttl"]["strategy"] == "keep_latest"
    assert got["ttl"]["ttl_minutes"] == DEFAULT_TTL


async def test_a_run_creates_its_thread_with_the_default_ttl_and_extends_expiry(
    client: LangGraphClient,
) -> None:
    thread_id = str(uuid.uuid4())
    await client.runs.wait(thread_id, "echo", input={"log": []}, if_not_exists="create")
    got: Any = await client.threads.get(thread_id, include=["ttl"])
    assert got["ttl"]["ttl_minutes"] == DEFAULT_TTL

    short = await client.threads.create(ttl={"strategy": "keep_latest", "ttl": 10})
    first: Any = await client.threads.get(short["thread_id"], include=["ttl"])
    await asyncio.sleep(0.3)
    await client.runs.wait(short["thread_id"], "echo", input={"log": []})
    later: Any = await client.threads.get(short["thread_id"], include=["ttl"])
    assert later["ttl"]["expires_at"] > first["ttl"]["expires_at"]


@pytest.mark.parametrize(
    ("ttl", "field"),
    [
        ({"strategy": "nonsense", "ttl": 5}, "strategy"),
        ({"strategy": "delete", "ttl": -5}, "ttl"),
        ({"strategy": "delete", "ttl": 0}, "ttl"),
        ({"strategy": "delete"}, "ttl"),
        ("soon", "ttl"),
    ],
)
async def test_an_invalid_ttl_is_a_422_naming_the_field(
    http: httpx.AsyncClient, ttl: object, field: str
) -> None:
    created = await http.post("/threads", json={"ttl": ttl})
    assert created.status_code == 422, created.text
    locs = [error["loc"] for error in created.json()["detail"]]
    assert any("ttl" in loc and loc[-1] == field for loc in locs), locs
    thread = (await http.post("/threads", json={})).json()
    patched = await http.patch(f"/threads/{thread['thread_id']}", json={"ttl": ttl})
    assert patched.status_code == 422, patched.text


async def test_prune_delete_removes_every_row_and_counts_only_known_threads(
    client: LangGraphClient, http: httpx.AsyncClient, settings: Settings
) -> None:
    thread = await client.threads.create()
    await chat(client, thread["thread_id"], 2)
    await client.runs.wait(thread["thread_id"], "approval", input={"topic": "owls"})
    counts = rows_per_table(settings, thread["thread_id"])
    assert all(counts[t] for t in ("checkpoints", "runs", "approvals")), counts

    result = await client.threads.prune([thread["thread_id"], str(uuid.uuid4())])
    assert result == {"pruned_count": 1}
    assert rows_per_table(settings, thread["thread_id"]) == dict.fromkeys(counts, 0)
    assert (await client.threads.prune([])) == {"pruned_count": 0}

    bad = await http.post("/threads/prune", json={"thread_ids": ["x"], "strategy": "delete"})
    assert bad.status_code == 422
    bad = await http.post("/threads/prune", json={"thread_ids": [], "strategy": "nope"})
    assert bad.status_code == 422
    assert "strategy" in bad.json()["detail"][0]["loc"]
    spec = (await http.get("/openapi.json")).json()
    assert "post" in spec["paths"]["/threads/prune"]


async def test_prune_keep_latest_leaves_one_readable_checkpoint(
    client: LangGraphClient, settings: Settings
) -> None:
    thread = await client.threads.create()
    await chat(client, thread["thread_id"], 4)
    before: Any = await client.threads.get_state(thread["thread_id"])
    assert len(checkpoint_ids(settings, thread["thread_id"])) > 4

    result = await client.threads.prune([thread["thread_id"]], strategy="keep_latest")
    assert result == {"pruned_count": 1}
    assert checkpoint_ids(settings, thread["thread_id"]) == [before["checkpoint"]["checkpoint_id"]]
    after: Any = await client.threads.get_state(thread["thread_id"])
    assert after["values"] == before["values"]
    assert len(after["values"]["messages"]) == 8
    history = await client.threads.get_history(thread["thread_id"])
    assert len(history) == 1

    # The thread goes on from there.
    await chat(client, thread["thread_id"], 1)
    again: Any = await client.threads.get_state(thread["thread_id"])
    assert len(again["values"]["messages"]) == 10
    assert again["values"]["messages"][:8] == before["values"]["messages"]


async def test_an_expired_thread_is_gone_from_every_table_within_a_sweep(
    client: LangGraphClient, settings: Settings
) -> None:
    thread = await client.threads.create(ttl={"strategy": "delete", "ttl": 0.05})
    await chat(client, thread["thread_id"], 2)
    counts = rows_per_table(settings, thread["thread_id"])
    assert all(counts[t] for t in ("checkpoints", "runs")), counts
    # 3 s of TTL from the last run, then one sweep interval (0.6 s), with some slack.
    deadline = time.monotonic() + 3.0 + 0.6 + 3.0
    while time.monotonic() < deadline:
        if rows_per_table(settings, thread["thread_id"]) == dict.fromkeys(counts, 0):
            break
        await asyncio.sleep(0.2)
    assert rows_per_table(settings, thread["thread_id"]) == dict.fromkeys(counts, 0)


async def test_an_expired_keep_latest_thread_keeps_its_latest_state(
    client: LangGraphClient, settings: Settings
) -> None:
    thread = await client.threads.create(ttl={"strategy": "keep_latest", "ttl": 0.02})
    await chat(client, thread["thread_id"], 3)
    before: Any = await client.threads.get_state(thread["thread_id"])
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline:
        if len(checkpoint_ids(settings, thread["thread_id"])) == 1:
            break
        await asyncio.sleep(0.2)
    assert checkpoint_ids(settings, thread["thread_id"]) == [before["checkpoint"]["checkpoint_id"]]
    after: Any = await client.threads.get_state(thread["thread_id"])
    assert after["values"] == before["values"]
    got: Any = await client.threads.get(thread["thread_id"], include=["ttl"])
    assert got["ttl"]["expires_at"] is None  # applied; its next run sets it again


async def test_a_pending_approval_keeps_its_thread_past_its_ttl(
    client: LangGraphClient, http: httpx.AsyncClient, settings: Settings
) -> None:
    thread = await client.threads.create(ttl={"strategy": "delete", "ttl": 0.02})
    await client.runs.wait(thread["thread_id"], "gate", input={"request": {"action": "ship"}})
    approval = await pending_approval(http, thread["thread_id"])
    await asyncio.sleep(1.2 + 1.5)  # expired, and a couple of sweeps passed
    assert rows_per_table(settings, thread["thread_id"])["threads"] == 1

    decided = await decide(http, approval["approval_id"], "approve")
    assert decided.status_code in (200, 202), decided.text
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if rows_per_table(settings, thread["thread_id"])["threads"] == 0:
            break
        await asyncio.sleep(0.2)
    assert sum(rows_per_table(settings, thread["thread_id"]).values()) == 0


async def wait_checkpoints(settings: Settings, thread_id: str, count: int) -> list[str]:
    """The thread's root checkpoints once there are `count` of them (ten seconds at most)."""
    deadline = time.monotonic() + 10.0
    ids = checkpoint_ids(settings, thread_id)
    while time.monotonic() < deadline:
        ids = checkpoint_ids(settings, thread_id)
        if len(ids) == count:
            break
        await asyncio.sleep(0.2)
    return ids


async def test_keep_last_n_from_thread_metadata_keeps_a_working_thread(
    client: LangGraphClient, settings: Settings
) -> None:
    thread = await client.threads.create(metadata={"checkpoint_keep_last": 4})
    await chat(client, thread["thread_id"], 5)
    state: Any = await client.threads.get_state(thread["thread_id"])
    ids = await wait_checkpoints(settings, thread["thread_id"], 4)
    assert len(ids) == 4
    assert ids[0] == state["checkpoint"]["checkpoint_id"]
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    assert [h["checkpoint"]["checkpoint_id"] for h in history] == ids
    assert history[-1]["parent_checkpoint"] is None
    # Every kept checkpoint reads back whole (delta rows and their bases were kept).
    for checkpoint_id in ids:
        old: Any = await client.threads.get_state(thread["thread_id"], checkpoint_id=checkpoint_id)
        assert len(old["values"]["messages"]) >= 8
    await chat(client, thread["thread_id"], 1)
    again: Any = await client.threads.get_state(thread["thread_id"])
    assert again["values"]["messages"][:10] == state["values"]["messages"]


async def test_keep_last_n_from_assistant_metadata_and_forks_keep_their_parent(
    client: LangGraphClient, settings: Settings
) -> None:
    assistant = await client.assistants.create("chat", metadata={"checkpoint_keep_last": 5})
    thread = await client.threads.create()
    for turn in range(3):
        await client.runs.wait(
            thread["thread_id"],
            assistant["assistant_id"],
            input={"messages": [{"role": "user", "content": f"turn {turn}"}]},
        )
    ids = await wait_checkpoints(settings, thread["thread_id"], 5)
    assert len(ids) == 5
    # Fork from the oldest kept checkpoint and run from the fork (3 checkpoints): the window
    # of 5 is those 3, the fork and the latest before it. The fork's parent is outside it
    # and not the next older: it stays too.
    forked_from = ids[-1]
    fork = await client.threads.update_state(
        thread["thread_id"], {"messages": []}, checkpoint_id=forked_from
    )
    await client.runs.wait(
        thread["thread_id"],
        assistant["assistant_id"],
        input={"messages": [{"role": "user", "content": "after the fork"}]},
    )
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        kept = checkpoint_ids(settings, thread["thread_id"])
        if len(kept) == 6:
            break
        await asyncio.sleep(0.2)
    kept = checkpoint_ids(settings, thread["thread_id"])
    assert len(kept) == 6
    assert kept[3] == fork["checkpoint_id"]
    assert kept[4] == ids[0]
    assert kept[5] == forked_from
    old: Any = await client.threads.get_state(thread["thread_id"], checkpoint_id=forked_from)
    assert old["values"]["messages"]


async def test_the_sweeper_never_touches_a_thread_with_a_running_run(
    client: LangGraphClient, settings: Settings
) -> None:
    thread = await client.threads.create(ttl={"strategy": "delete", "ttl": 0.01})
    run = await client.runs.create(thread["thread_id"], "slow", input={"delay": 1.0})
    await asyncio.sleep(2.5)  # expired (0.6 s) and several sweeps while the run runs
    counts = rows_per_table(settings, thread["thread_id"])
    assert counts["threads"] == 1
    assert counts["runs"] == 1
    await client.runs.join(thread["thread_id"], run["run_id"])
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if sum(rows_per_table(settings, thread["thread_id"]).values()) == 0:
            break
        await asyncio.sleep(0.2)
    assert sum(rows_per_table(settings, thread["thread_id"]).values()) == 0


async def test_prune_touches_only_the_callers_threads(
    client: LangGraphClient, settings: Settings
) -> None:
    other = str(uuid.uuid4())
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO threads (thread_id, owner) VALUES (%s, 'someone-else')", (other,))
    for strategy in ("delete", "keep_latest"):
        result = await client.threads.prune([other], strategy=strategy)  # type: ignore[arg-type]
        assert result == {"pruned_count": 0}
    assert rows_per_table(settings, other)["threads"] == 1


async def test_one_process_sweeps_at_a_time(settings: Settings) -> None:
    engine = create_engine(settings)
    sweeper = ThreadSweeper(
        engine=engine,
        threads=cast(ThreadService, None),  # not reached: the sweep is skipped
        interval=60,
        limit=10,
        keep_last=None,
    )
    try:
        with psycopg.connect(settings.psycopg_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            assert (await sweeper.sweep()).skipped
            holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    finally:
        await engine.dispose()


async def test_sweeps_are_counted_in_metrics(
    client: LangGraphClient, http: httpx.AsyncClient, settings: Settings
) -> None:
    thread = await client.threads.create(ttl={"strategy": "delete", "ttl": 0.01})
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if rows_per_table(settings, thread["thread_id"])["threads"] == 0:
            break
        await asyncio.sleep(0.2)
    text = (await http.get("/metrics")).text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith('trellis_threads_swept_total{action="delete"}')
    )
    assert float(line.split()[-1]) >= 1
