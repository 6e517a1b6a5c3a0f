"""A thread row keeps a bounded copy of its values: keys too large for it are read from the
latest checkpoint, and `GET /threads/{id}`, search and count answer as if it kept them all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.core.settings import Settings
from server.http.app import create_app
from tests.support.servers import serve_in_loop

BOUND = 400


@pytest.fixture
async def small(settings: Settings) -> AsyncIterator[tuple[LangGraphClient, Settings]]:
    """A server whose thread rows keep at most `BOUND` bytes of values."""
    bounded = settings.model_copy(update={"thread_values_max_bytes": BOUND})
    async with serve_in_loop(create_app(bounded)) as url:
        client = get_client(url=url, api_key=None)
        yield client, bounded
        await client.http.client.aclose()


def _row(settings: Settings, thread_id: str) -> dict[str, Any]:
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        found = conn.execute(
            'SELECT "values", values_omitted, pg_column_size("values") FROM threads '
            "WHERE thread_id = %s",
            (thread_id,),
        ).fetchone()
    assert found is not None
    return {"values": found[0], "omitted": found[1], "bytes": found[2]}


async def _chat(client: LangGraphClient, thread_id: str, text: str) -> None:
    await client.runs.wait(
        thread_id, "chat", input={"messages": [{"role": "user", "content": text}]}
    )


async def test_a_long_thread_keeps_a_bounded_row_and_shows_its_full_values(
    small: tuple[LangGraphClient, Settings],
) -> None:
    client, settings = small
    thread_id = str((await client.threads.create())["thread_id"])
    await _chat(client, thread_id, "hi")
    assert _row(settings, thread_id)["omitted"] == []  # small enough to keep whole
    for turn in range(5):
        await _chat(client, thread_id, "x" * 200 + str(turn))
    row = _row(settings, thread_id)
    assert row["omitted"] == ["messages"]
    assert row["values"] == {}
    assert row["bytes"] <= BOUND
    state = await client.threads.get_state(thread_id)
    thread = await client.threads.get(thread_id)
    assert "values_omitted" not in thread
    assert thread["values"] == state["values"]
    assert len(thread["values"]["messages"]) == 12
    [found] = await client.threads.search(ids=[thread_id])  # type: ignore[call-arg]
    assert found["values"] == state["values"]


async def test_search_and_count_match_values_left_out_of_the_row(
    small: tuple[LangGraphClient, Settings],
) -> None:
    client, settings = small
    marker = f"marker-{id(client)}"
    long_id = str((await client.threads.create(metadata={"t": marker}))["thread_id"])
    short_id = str((await client.threads.create(metadata={"t": marker}))["thread_id"])
    for turn in range(3):
        await _chat(client, long_id, "y" * 300 + str(turn))
    await _chat(client, short_id, "short")
    assert _row(settings, long_id)["omitted"] == ["messages"]
    assert _row(settings, short_id)["omitted"] == []

    reply = {"messages": [{"content": "hello there friend"}]}
    both = await client.threads.search(metadata={"t": marker}, values=reply, limit=10)
    assert {t["thread_id"] for t in both} == {long_id, short_id}
    assert await client.threads.count(metadata={"t": marker}, values=reply) == 2

    long_only = {"messages": [{"content": "y" * 300 + "2"}]}
    found = await client.threads.search(metadata={"t": marker}, values=long_only)
    assert [t["thread_id"] for t in found] == [long_id]
    assert await client.threads.count(metadata={"t": marker}, values=long_only) == 1

    nowhere = {"messages": [{"content": "nobody said this"}]}
    assert await client.threads.search(metadata={"t": marker}, values=nowhere) == []
    assert await client.threads.count(metadata={"t": marker}, values=nowhere) == 0

    # Pages are counted after the check: offset 1 of two matches is the older one.
    page = await client.threads.search(
        metadata={"t": marker}, values=reply, limit=1, offset=1, sort_order="asc"
    )
    assert [t["thread_id"] for t in page] == [short_id]
