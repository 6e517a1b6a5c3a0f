"""The Store API through the official client, and the store graphs see at run time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from server.db.owner_store import owner_label


@pytest.fixture
async def http(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        yield client


def _suite() -> str:
    return f"suite-{uuid.uuid4().hex[:8]}"


async def test_put_get_search_namespaces_delete(client: LangGraphClient) -> None:
    suite = _suite()
    await client.store.put_item((suite, "prefs"), "theme", {"color": "green", "size": 3})
    await client.store.put_item((suite, "prefs"), "lang", {"code": "fr", "size": 1})
    await client.store.put_item((suite, "notes", "2026"), "n1", {"text": "hello"})

    item = await client.store.get_item((suite, "prefs"), "theme")
    assert item["namespace"] == [suite, "prefs"]
    assert item["key"] == "theme"
    assert item["value"] == {"color": "green", "size": 3}
    assert set(item) >= {"namespace", "key", "value", "created_at", "updated_at"}
    assert await client.store.get_item((suite, "prefs"), "missing") is None

    await client.store.put_item((suite, "prefs"), "theme", {"color": "blue", "size": 3})
    updated = await client.store.get_item((suite, "prefs"), "theme")
    assert updated["value"]["color"] == "blue"
    assert updated["created_at"] == item["created_at"]
    assert updated["updated_at"] >= item["updated_at"]

    everything = await client.store.search_items((suite,), limit=10)
    assert {i["key"] for i in everything["items"]} == {"theme", "lang", "n1"}
    prefs = await client.store.search_items((suite, "prefs"))
    assert {i["key"] for i in prefs["items"]} == {"theme", "lang"}
    filtered = await client.store.search_items((suite,), filter={"size": 3})
    assert [i["key"] for i in filtered["items"]] == ["theme"]
    paged = await client.store.search_items((suite,), limit=2, offset=2)
    assert len(paged["items"]) == 1

    namespaces = await client.store.list_namespaces(prefix=[suite])
    assert sorted(namespaces["namespaces"]) == [[suite, "notes", "2026"], [suite, "prefs"]]
    shallow = await client.store.list_namespaces(prefix=[suite], max_depth=2)
    assert sorted(shallow["namespaces"]) == [[suite, "notes"], [suite, "prefs"]]
    by_suffix = await client.store.list_namespaces(prefix=[suite], suffix=["2026"])
    assert by_suffix["namespaces"] == [[suite, "notes", "2026"]]

    await client.store.delete_item((suite, "prefs"), "theme")
    assert await client.store.get_item((suite, "prefs"), "theme") is None
    await client.store.delete_item((suite, "prefs"), "theme")  # idempotent


async def test_items_are_stored_under_the_owner(
    client: LangGraphClient, settings: Settings
) -> None:
    suite = _suite()
    await client.store.put_item((suite,), "k", {"v": 1})
    with psycopg.connect(settings.psycopg_url) as conn:
        rows = conn.execute(
            "SELECT prefix FROM store WHERE key = 'k' AND prefix LIKE %s", (f"%{suite}",)
        ).fetchall()
    assert rows == [(f"trellis-owner.{owner_label('anonymous')}.{suite}",)]
    # No namespace the caller can name reaches the scope labels.
    listed = await client.store.list_namespaces(limit=1000)
    assert all(ns[0] != "trellis-owner" for ns in listed["namespaces"])


async def test_graphs_use_the_same_owner_scoped_store(client: LangGraphClient) -> None:
    key = f"memo-{uuid.uuid4().hex[:8]}"
    result = await client.runs.wait(None, "memo", input={"key": key, "text": "from a node"})
    assert key in result["seen"]
    item = await client.store.get_item(("memos",), key)
    assert item is not None
    assert item["value"] == {"text": "from a node"}
    assert item["namespace"] == ["memos"]


@pytest.mark.parametrize(
    "namespace",
    [["a.b"], [""], ["ok", ""], ["nul\x00"], [], ["x" * 300], ["n"] * 40],
)
async def test_invalid_namespaces_are_refused(
    http: httpx.AsyncClient, namespace: list[str]
) -> None:
    put = await http.put("/store/items", json={"namespace": namespace, "key": "k", "value": {}})
    assert put.status_code == 422, put.text
    assert put.json()["code"] == "validation_error"


async def test_invalid_requests_are_refused(http: httpx.AsyncClient) -> None:
    assert (
        await http.get("/store/items", params={"namespace": "a..b", "key": "k"})
    ).status_code == 422
    assert (await http.get("/store/items", params={"namespace": "a"})).status_code == 422
    no_value = await http.put("/store/items", json={"namespace": ["a"], "key": "k"})
    assert no_value.status_code == 422
    not_dict = await http.put("/store/items", json={"namespace": ["a"], "key": "k", "value": [1]})
    assert not_dict.status_code == 422
    empty_key = await http.put("/store/items", json={"namespace": ["a"], "key": "", "value": {}})
    assert empty_key.status_code == 422
    search = await http.post("/store/items/search", json={"namespace_prefix": ["a.b"]})
    assert search.status_code == 422
    listing = await http.post("/store/namespaces", json={"prefix": ["a.b"]})
    assert listing.status_code == 422
    delete = await http.request("DELETE", "/store/items", json={"namespace": [], "key": "k"})
    assert delete.status_code == 422
