"""Store item TTLs through the official client: `ttl` on put, `refresh_ttl` on get and search,
`store.ttl` of the `langgraph.json`, expired items invisible at once and swept later."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient
from prometheus_client import REGISTRY

from server.core.settings import Settings
from server.db.owner_store import scope_of
from server.db.pool import Pool, open_pool
from server.db.store_sweeper import SWEEP_LOCK, StoreSweeper
from server.graph_host.registry import GraphLoadError, read_config
from tests.server.db.store_support import existing, row, store_server, write_config


def _suite() -> str:
    return f"ttl-{uuid.uuid4().hex[:8]}"


async def _wait_until_expired(settings: Settings, namespace: tuple[str, ...], key: str) -> None:
    for _ in range(200):
        found = row(settings, namespace, key)
        if found is not None and found["expired"]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{namespace}/{key} never expired")


async def test_an_expired_item_is_invisible_at_once_but_its_row_waits_for_the_sweep(
    client: LangGraphClient, settings: Settings
) -> None:
    suite = _suite()
    await client.store.put_item((suite, "a"), "short", {"v": 1}, ttl=0.05)  # 3 s
    await client.store.put_item((suite, "b"), "kept", {"v": 2})
    assert (await client.store.get_item((suite, "a"), "short", refresh_ttl=False)) is not None
    stored = row(settings, (suite, "a"), "short")
    assert stored is not None
    assert stored["ttl_minutes"] == pytest.approx(0.05)

    await _wait_until_expired(settings, (suite, "a"), "short")
    assert await client.store.get_item((suite, "a"), "short") is None
    assert await client.store.get_item((suite, "a"), "short", refresh_ttl=True) is None
    found = await client.store.search_items((suite,))
    assert [i["key"] for i in found["items"]] == ["kept"]
    namespaces = await client.store.list_namespaces(prefix=[suite])
    assert namespaces["namespaces"] == [[suite, "b"]]
    # Invisible, not yet deleted: that is the sweeper's job (every 5 minutes by default).
    assert row(settings, (suite, "a"), "short") is not None


async def test_refresh_ttl_on_get_and_search_extends_the_expiry(
    client: LangGraphClient, settings: Settings
) -> None:
    suite = _suite()
    for key in ("got", "searched", "control"):
        await client.store.put_item((suite,), key, {"k": key}, ttl=0.1)  # 6 s
    before = {k: existing(settings, (suite,), k) for k in ("got", "searched", "control")}
    await asyncio.sleep(2.5)

    assert (await client.store.get_item((suite,), "got", refresh_ttl=True))["value"] == {"k": "got"}
    found = await client.store.search_items((suite,), filter={"k": "searched"}, refresh_ttl=True)
    assert [i["key"] for i in found["items"]] == ["searched"]
    await client.store.get_item((suite,), "control", refresh_ttl=False)

    after = {k: existing(settings, (suite,), k) for k in ("got", "searched", "control")}
    for key in ("got", "searched"):
        moved = after[key]["expires_at"] - before[key]["expires_at"]
        assert moved.total_seconds() >= 2.0, key
    assert after["control"]["expires_at"] == before["control"]["expires_at"]

    await _wait_until_expired(settings, (suite,), "control")
    # The refreshed ones outlive the control item (they expire 2.5 s later).
    assert await client.store.get_item((suite,), "control", refresh_ttl=False) is None
    assert existing(settings, (suite,), "got")["expired"] is False
    assert await client.store.get_item((suite,), "got", refresh_ttl=False) is not None


@pytest.mark.parametrize("ttl", ["0", "-5", "1e400", '"soon"', "[]"])
async def test_a_bad_ttl_is_422_naming_the_field(http: httpx.AsyncClient, ttl: str) -> None:
    body = f'{{"namespace": ["x"], "key": "k", "value": {{}}, "ttl": {ttl}}}'
    answer = await http.put(
        "/store/items", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"
    assert "ttl" in answer.text


async def test_store_ttl_of_langgraph_json_sets_default_refresh_and_sweep(
    settings: Settings, tmp_path: Path
) -> None:
    suite = _suite()
    store = {"ttl": {"default_ttl": 0.1, "refresh_on_read": False, "sweep_interval_minutes": 0.01}}
    async with store_server(settings, tmp_path, store) as client:
        await client.store.put_item((suite,), "defaulted", {"v": 1})
        await client.store.put_item((suite,), "own", {"v": 2}, ttl=10)
        first = row(settings, (suite,), "defaulted")
        assert first is not None
        assert first["ttl_minutes"] == pytest.approx(0.1)
        assert existing(settings, (suite,), "own")["ttl_minutes"] == 10

        # refresh_on_read false: a plain read leaves the expiry; an explicit refresh moves it.
        await asyncio.sleep(0.2)
        await client.store.get_item((suite,), "defaulted")
        assert existing(settings, (suite,), "defaulted")["expires_at"] == first["expires_at"]
        await client.store.get_item((suite,), "defaulted", refresh_ttl=True)
        assert existing(settings, (suite,), "defaulted")["expires_at"] > first["expires_at"]

        # The sweeper (every 0.6 s here) deletes the row once it expired.
        for _ in range(200):
            if row(settings, (suite,), "defaulted") is None:
                break
            await asyncio.sleep(0.1)
        assert row(settings, (suite,), "defaulted") is None
        assert row(settings, (suite,), "own") is not None


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    opened = await open_pool(settings)
    yield opened
    await opened.close()


def _expired_rows(settings: Settings, suite: str, count: int) -> None:
    prefix = ".".join((*scope_of("anonymous"), suite))
    with psycopg.connect(settings.psycopg_url) as conn:
        for i in range(count):
            conn.execute(
                "INSERT INTO store (prefix, key, value, expires_at, ttl_minutes) "
                "VALUES (%s, %s, '{}', NOW() - INTERVAL '1 second', 1)",
                (prefix, f"k{i}"),
            )


def _count(settings: Settings, suite: str) -> int:
    prefix = ".".join((*scope_of("anonymous"), suite))
    with psycopg.connect(settings.psycopg_url) as conn:
        found = conn.execute("SELECT count(*) FROM store WHERE prefix = %s", (prefix,)).fetchone()
    assert found is not None
    return int(found[0])


async def test_the_sweeper_deletes_in_bounded_batches_and_yields_to_another_sweeper(
    client: LangGraphClient, settings: Settings, pool: Pool
) -> None:
    suite = _suite()
    await client.store.put_item((suite,), "alive", {"v": 1}, ttl=60)
    _expired_rows(settings, suite, 5)
    # Another process holds the sweep lock: this one skips, deleting nothing.
    with psycopg.connect(settings.psycopg_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (SWEEP_LOCK,))
        assert await StoreSweeper(pool, interval_seconds=60).sweep() == 0
        other.execute("SELECT pg_advisory_unlock(%s)", (SWEEP_LOCK,))
    assert _count(settings, suite) == 6
    # Batches of 2, at most 2 per sweep: a sweep deletes 4, the next one the rest.
    sweeper = StoreSweeper(pool, interval_seconds=60, batch_size=2, max_batches=2)
    counted = REGISTRY.get_sample_value("trellis_store_items_swept_total") or 0.0
    first = await sweeper.sweep()
    assert first == 4
    assert REGISTRY.get_sample_value("trellis_store_items_swept_total") == counted + 4
    assert await sweeper.sweep() >= 1  # the last row (and any other test's expired ones)
    assert _count(settings, suite) == 1
    assert await client.store.get_item((suite,), "alive") is not None


@pytest.mark.parametrize(
    ("store", "key"),
    [
        ({"ttl": {"default_ttl": -1}}, "store.ttl.default_ttl"),
        ({"ttl": {"refresh_on_read": "yes"}}, "store.ttl.refresh_on_read"),
        ({"ttl": {"sweep_interval_minutes": 0}}, "store.ttl.sweep_interval_minutes"),
        ({"ttl": []}, "store.ttl"),
        ({"index": {"dims": 0, "embed": "openai:m"}}, "store.index.dims"),
        ({"index": {"dims": 100}}, "store.index.dims"),
        ({"index": {"dims": 8, "embed": "cohere:embed"}}, "store.index.embed"),
        ({"index": {"fields": "text"}}, "store.index.fields"),
        ("yes", "store"),
    ],
)
def test_a_bad_store_config_is_one_error_line_naming_the_key(
    tmp_path: Path, store: object, key: str
) -> None:
    config = write_config(tmp_path, store)
    with pytest.raises(GraphLoadError) as raised:
        read_config(config)
    message = str(raised.value)
    assert "\n" not in message
    assert f"{config}: {key}:" in message


def test_trellis_serve_refuses_a_bad_store_config_in_one_line(
    tmp_path: Path, settings: Settings
) -> None:
    config = write_config(tmp_path, {"ttl": {"default_ttl": "an hour"}})
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--config", str(config)],
        env={**os.environ, "DATABASE_URL": settings.database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "store.ttl.default_ttl: expected a number of minutes, got 'an hour'" in lines[0]


def test_unknown_store_keys_are_reported_not_fatal(tmp_path: Path) -> None:
    config = read_config(
        write_config(tmp_path, {"path": "./mine.py:store", "ttl": {"default_ttl": 5, "x": 1}})
    )
    assert config.store.ignored == ("store.path", "store.ttl.x")
    assert config.store.ttl.default_ttl == 5
