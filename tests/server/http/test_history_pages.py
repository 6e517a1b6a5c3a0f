"""`/threads/{id}/history` pages: cut at a byte budget, continued with `before`, each state once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from langgraph_sdk import get_client

from server.core.settings import Settings
from server.http.app import create_app
from tests.support.servers import serve_in_loop

RUNS = 8
TEXT = "x" * 700
"""Each state carries the text (and its metadata): 1.5 to 2.5 KB of JSON."""


@pytest.fixture(scope="module")
async def thread_id(server_url: str) -> str:
    """A thread of the `echo` graph with RUNS runs: four checkpoints a run."""
    client = get_client(url=server_url, api_key=None)
    thread = await client.threads.create()
    for _ in range(RUNS):
        await client.runs.wait(thread["thread_id"], "echo", input={"text": TEXT})
    await client.http.client.aclose()
    return str(thread["thread_id"])


@pytest.fixture(scope="module")
async def everything(server_url: str, thread_id: str) -> list[str]:
    """Every checkpoint id of the thread, newest first, in one page of the default budget."""
    async with httpx.AsyncClient(base_url=server_url) as http:
        response = await http.post(f"/threads/{thread_id}/history", json={"limit": 1000})
    assert "x-next-before" not in response.headers
    ids = [state["checkpoint_id"] for state in response.json()]
    assert len(ids) == len(set(ids)) >= 4 * RUNS
    return ids


async def small_budget(settings: Settings, budget: int) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"history_max_bytes": budget}))
    async with serve_in_loop(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


@pytest.fixture
async def budget_8k(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in small_budget(settings, 8192):
        yield http


@pytest.fixture
async def budget_1k(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in small_budget(settings, 1024):
        yield http


async def walk(
    http: httpx.AsyncClient, thread_id: str, limit: int, *, as_object: bool = False
) -> list[list[dict[str, object]]]:
    """Pages of the history, following `X-Next-Before` (bounded: at most 200 pages)."""
    pages: list[list[dict[str, object]]] = []
    body: dict[str, object] = {"limit": limit}
    for _ in range(200):
        response = await http.post(f"/threads/{thread_id}/history", json=body)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        following = response.headers.get("x-next-before")
        if following is None:
            return pages
        assert following == pages[-1][-1]["checkpoint_id"]
        body["before"] = {"checkpoint_id": following} if as_object else following
    raise AssertionError("the history did not end within 200 pages")


def ids_of(pages: list[list[dict[str, object]]]) -> list[object]:
    return [state["checkpoint_id"] for page in pages for state in page]


async def test_a_page_stops_at_the_budget_and_the_rest_follows_once_in_order(
    budget_8k: httpx.AsyncClient, thread_id: str, everything: list[str]
) -> None:
    response = await budget_8k.post(f"/threads/{thread_id}/history", json={"limit": 1000})
    assert len(response.content) <= 8192
    assert 1 < len(response.json()) < len(everything)
    assert response.headers["x-next-before"] == response.json()[-1]["checkpoint_id"]

    pages = await walk(budget_8k, thread_id, 1000)
    assert len(pages) > 2
    assert ids_of(pages) == everything
    for page in pages:
        assert len(httpx.Response(200, json=page).content) <= 8192 or len(page) == 1


async def test_before_as_a_checkpoint_object_continues_as_well(
    budget_8k: httpx.AsyncClient, thread_id: str, everything: list[str]
) -> None:
    assert ids_of(await walk(budget_8k, thread_id, 1000, as_object=True)) == everything


async def test_a_state_larger_than_the_budget_is_a_page_of_its_own(
    budget_1k: httpx.AsyncClient, thread_id: str, everything: list[str]
) -> None:
    pages = await walk(budget_1k, thread_id, 10)
    assert [len(page) for page in pages] == [1] * len(everything)
    assert ids_of(pages) == everything


async def test_a_page_full_at_limit_says_where_to_go_on(
    http: httpx.AsyncClient, thread_id: str, everything: list[str]
) -> None:
    pages = await walk(http, thread_id, 5)
    assert [len(page) for page in pages[:-1]] == [5] * (len(pages) - 1)
    assert ids_of(pages) == everything


async def test_get_history_pages_with_before_in_the_query(
    budget_8k: httpx.AsyncClient, thread_id: str, everything: list[str]
) -> None:
    seen: list[object] = []
    params: dict[str, str | int] = {"limit": 1000}
    for _ in range(200):
        response = await budget_8k.get(f"/threads/{thread_id}/history", params=params)
        seen += [state["checkpoint_id"] for state in response.json()]
        if "x-next-before" not in response.headers:
            break
        params["before"] = response.headers["x-next-before"]
    assert seen == everything


async def test_the_sdk_pages_by_hand_with_before(
    server_url: str, thread_id: str, everything: list[str]
) -> None:
    client = get_client(url=server_url, api_key=None)
    first = await client.threads.get_history(thread_id)
    assert [s["checkpoint_id"] for s in first] == everything[:10]
    rest = await client.threads.get_history(thread_id, limit=1000, before=first[-1]["checkpoint"])
    assert [s["checkpoint_id"] for s in first + rest] == everything
    await client.http.client.aclose()
