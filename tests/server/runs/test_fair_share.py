"""Per-owner fair share of run slots: one identity's long runs cannot hold every slot."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import psycopg

from tests.support.security import create_key, security_settings, trellis

LONG = {"delay": 2.0}
"""Four steps of 2 s: each of these runs holds its slot for 8 s."""


async def _statuses(database_url: str, owner: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (
            await conn.execute(
                "SELECT status, count(*) FROM runs WHERE owner = %s GROUP BY status", (owner,)
            )
        ).fetchall()
    return {status: int(count) for status, count in rows}


async def test_another_identity_starts_while_one_saturates_its_share(security_db: str) -> None:
    settings = security_settings(
        security_db,
        auth_mode="api_key",
        run_concurrency=4,
        run_concurrency_per_owner=2,
        shutdown_grace_seconds=0.5,
        run_sweep_seconds=30,
    )
    hog, other = f"hog-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        hog_key = {"x-api-key": (await create_key(settings, hog)).secret_key}
        other_key = {"x-api-key": (await create_key(settings, other)).secret_key}
        hogging = []
        for _ in range(4):  # as many as the process has slots
            created = await http.post(
                "/runs", json={"assistant_id": "slow", "input": LONG}, headers=hog_key
            )
            assert created.status_code == 200, created.text
            hogging.append(created.json())
        seen: list[dict[str, int]] = []
        deadline = time.monotonic() + 10
        while (await _statuses(security_db, hog)).get("running", 0) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        for _ in range(5):  # its share is full; its other runs wait although slots are free
            seen.append(await _statuses(security_db, hog))
            await asyncio.sleep(0.1)
        assert all(counts == {"running": 2, "pending": 2} for counts in seen), seen

        began = time.monotonic()
        created = await http.post(
            "/runs", json={"assistant_id": "slow", "input": {"delay": 0.05}}, headers=other_key
        )
        assert created.status_code == 200, created.text
        while (await _statuses(security_db, other)).keys().isdisjoint({"running", "success"}):
            assert time.monotonic() - began < 5
            await asyncio.sleep(0.02)
        waited = time.monotonic() - began
        async with await psycopg.AsyncConnection.connect(security_db) as conn:
            row = await (
                await conn.execute(
                    "SELECT extract(epoch FROM started_at - created_at) FROM runs WHERE owner = %s",
                    (other,),
                )
            ).fetchone()
        assert row is not None
        print(
            f"fair share: the other identity's run started {float(row[0]):.3f} s after "
            f"its creation ({waited:.3f} s from the request, polled)"
        )
        assert float(row[0]) < 2.0
        assert waited < 2.0
        assert (await _statuses(security_db, hog)).get("running", 0) == 2

        # One of its runs ends: its next one starts at once (not at the next sweep, 30 s away).
        async with await psycopg.AsyncConnection.connect(security_db) as conn:
            running = await (
                await conn.execute(
                    "SELECT thread_id, run_id FROM runs WHERE owner = %s AND status = 'running'",
                    (hog,),
                )
            ).fetchall()
        thread_id, run_id = running[0]
        stopped = await http.post(f"/threads/{thread_id}/runs/{run_id}/cancel", headers=hog_key)
        assert stopped.status_code == 200
        began = time.monotonic()
        while (await _statuses(security_db, hog)).get("pending", 0) > 1:
            assert time.monotonic() - began < 1.0
            await asyncio.sleep(0.02)
        after = await _statuses(security_db, hog)
        assert (after["running"], after["pending"]) == (2, 1), after

        for run in hogging:
            if run["run_id"] == str(run_id):
                continue  # cancelled above: its temporary thread is gone
            stopped = await http.post(
                f"/threads/{run['thread_id']}/runs/{run['run_id']}/cancel", headers=hog_key
            )
            assert stopped.status_code == 200
