"""A thread's streams are its owner's: another owner gets 404 (and no run, no frame), a
caller without credentials 401, over HTTP and over the websocket alike; the commands
count against the `runs` rate limit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from langgraph_sdk import get_client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.security import create_key, security_settings, trellis


@dataclass
class Owners:
    url: str
    alice: str
    bob: str
    carol: str
    thread_id: str
    run_id: str


@pytest.fixture(scope="module")
async def owners(security_db: str) -> AsyncIterator[Owners]:
    settings = security_settings(security_db, auth_mode="api_key", rate_limit_runs="3/minute")
    async with trellis(settings) as url:
        alice = await create_key(settings, "alice")
        bob = await create_key(settings, "bob")
        carol = await create_key(settings, "carol")
        client = get_client(url=url, api_key=alice.secret_key)
        try:
            # The SDK's websocket handshake sends the stream's headers, not the client's.
            async with client.threads.stream(
                assistant_id="echo",
                transport="websocket",
                headers={"x-api-key": alice.secret_key},
            ) as t:
                started = await t.run.start(input={"text": "secret"})
                assert (await t.output.with_timeout(30))["text"] == "secret!"
                thread_id = t.thread_id
        finally:
            await client.http.client.aclose()
        yield Owners(
            url, alice.secret_key, bob.secret_key, carol.secret_key, thread_id, started["run_id"]
        )


def _ws(url: str, path: str) -> str:
    return "ws" + url.removeprefix("http") + path


async def test_another_owner_gets_404_everywhere(owners: Owners) -> None:
    t = owners.thread_id
    start = {"id": 1, "method": "run.start", "params": {"assistant_id": "echo", "input": {}}}
    async with httpx.AsyncClient(
        base_url=owners.url, headers={"x-api-key": owners.bob}, timeout=10
    ) as bob:
        for method, path, body in [
            ("POST", f"/threads/{t}/commands", start),
            ("POST", f"/threads/{t}/stream/events", {"channels": ["values", "lifecycle"]}),
            ("GET", f"/threads/{t}/stream", None),
        ]:
            response = await bob.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert "secret" not in response.text
    async with httpx.AsyncClient(
        base_url=owners.url, headers={"x-api-key": owners.alice}, timeout=10
    ) as alice:
        runs = (await alice.get(f"/threads/{t}/runs")).json()
    assert [r["run_id"] for r in runs] == [owners.run_id]  # bob's run.start made none

    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            _ws(owners.url, f"/threads/{t}/stream/events"),
            additional_headers={"x-api-key": owners.bob},
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_no_credentials_no_stream(owners: Owners) -> None:
    t = owners.thread_id
    async with httpx.AsyncClient(base_url=owners.url, timeout=10) as anonymous:
        events = await anonymous.post(f"/threads/{t}/stream/events", json={"channels": ["values"]})
        assert events.status_code == 401
        command = await anonymous.post(f"/threads/{t}/commands", json={"id": 1, "method": "x"})
        assert command.status_code == 401
    with pytest.raises(InvalidStatus):
        async with connect(_ws(owners.url, f"/threads/{t}/stream/events")):
            pass


async def test_owner_replays_the_thread_over_the_websocket(owners: Owners) -> None:
    async with connect(
        _ws(owners.url, f"/threads/{owners.thread_id}/stream/events"),
        additional_headers={"x-api-key": owners.alice},
    ) as socket:
        await socket.send(
            '{"id": 7, "method": "subscription.subscribe", '
            '"params": {"channels": ["lifecycle", "values"]}}'
        )
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            while not frames or frames[-1].get("params", {}).get("data", {}).get("event") not in (
                "completed",
                "failed",
            ):
                frames.append(orjson.loads(await socket.recv()))
    # The history comes replayed before the response, or live after it (if the socket
    # had not read it yet): either way once, in order.
    at = next(n for n, frame in enumerate(frames) if frame.get("id") == 7)
    response = frames.pop(at)
    assert response["type"] == "success"
    assert response["result"]["replayed_events"] == at
    assert [e["method"] for e in frames] == ["lifecycle", "values", "values", "values", "lifecycle"]
    assert frames[-2]["params"]["data"] == {"text": "secret!", "steps": ["first", "second"]}


async def test_commands_are_limited_like_runs(owners: Owners) -> None:
    thread_id = str(uuid.uuid4())
    async with httpx.AsyncClient(
        base_url=owners.url, headers={"x-api-key": owners.carol}, timeout=10
    ) as carol:
        codes = [
            (
                await carol.post(f"/threads/{thread_id}/commands", json={"id": n, "method": "x"})
            ).status_code
            for n in range(4)
        ]
    assert codes == [200, 200, 200, 429]
