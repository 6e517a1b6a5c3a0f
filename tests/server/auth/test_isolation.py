"""Per-owner isolation over every endpoint: owner, another owner, no key, a revoked key.

Another owner's resources answer 404 (never 403, never a partial body, never an
SSE frame); without valid credentials everything but /ok, /info and the docs is
401. The owner's unique marker must never appear in a response to anyone else.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from server.core.settings import Settings
from tests.support.security import create_key, revoke_key, security_settings, trellis


@dataclass
class World:
    url: str
    settings: Settings
    alice: str
    bob: str
    revoked: str
    marker: str
    assistant_id: str
    thread_id: str
    run_id: str
    http: httpx.AsyncClient


@pytest.fixture(scope="module")
async def world(security_db: str) -> AsyncIterator[World]:
    settings = security_settings(security_db, auth_mode="api_key")
    async with trellis(settings) as url:
        alice = await create_key(settings, "alice")
        bob = await create_key(settings, "bob")
        old = await create_key(settings, "alice")
        await revoke_key(settings, old.key_id)
        marker = f"MARKER-{uuid.uuid4().hex}"
        async with httpx.AsyncClient(
            base_url=url, headers={"x-api-key": alice.secret_key}, timeout=20
        ) as http:
            assistant = (
                await http.post(
                    "/assistants",
                    json={"graph_id": "echo", "name": marker, "metadata": {"m": marker}},
                )
            ).json()
            thread = (await http.post("/threads", json={"metadata": {"m": marker}})).json()
            response = await http.post(
                f"/threads/{thread['thread_id']}/runs/wait",
                json={"assistant_id": assistant["assistant_id"], "input": {"text": marker}},
            )
            assert marker in response.text
            runs = (await http.get(f"/threads/{thread['thread_id']}/runs")).json()
        shared = httpx.AsyncClient(base_url=url, timeout=20)
        yield World(
            url,
            settings,
            alice.secret_key,
            bob.secret_key,
            old.secret_key,
            marker,
            assistant["assistant_id"],
            thread["thread_id"],
            runs[0]["run_id"],
            shared,
        )
        await shared.aclose()


def endpoints(w: World) -> list[tuple[str, str, Any, bool]]:
    """(method, path, json body, mutates) for every endpoint touching alice's resources."""
    a, t, r = w.assistant_id, w.thread_id, w.run_id
    run = {"assistant_id": a, "input": {"text": "x"}}
    return [
        ("GET", f"/assistants/{a}", None, False),
        ("GET", f"/assistants/{a}/graph", None, False),
        ("GET", f"/assistants/{a}/schemas", None, False),
        ("GET", f"/assistants/{a}/subgraphs", None, False),
        ("POST", f"/assistants/{a}/versions", {}, False),
        ("PATCH", f"/assistants/{a}", {"metadata": {"x": 1}}, True),
        ("POST", f"/assistants/{a}/latest", {"version": 1}, True),
        ("GET", f"/threads/{t}", None, False),
        ("GET", f"/threads/{t}/state", None, False),
        ("POST", f"/threads/{t}/history", {}, False),
        ("GET", f"/threads/{t}/history", None, False),
        ("GET", f"/threads/{t}/runs", None, False),
        ("GET", f"/threads/{t}/runs/{r}", None, False),
        ("GET", f"/threads/{t}/runs/{r}/join", None, False),
        ("GET", f"/threads/{t}/runs/{r}/stream", None, False),
        ("PATCH", f"/threads/{t}", {"metadata": {"x": 1}}, True),
        ("POST", f"/threads/{t}/state", {"values": {"text": "y"}}, True),
        ("POST", f"/threads/{t}/copy", {}, True),
        ("POST", f"/threads/{t}/runs/{r}/cancel", None, True),
        ("POST", "/runs/cancel", {"thread_id": t, "run_ids": [r]}, True),
        ("POST", f"/threads/{t}/runs", run, True),
        ("POST", f"/threads/{t}/runs/wait", run, True),
        ("POST", f"/threads/{t}/runs/stream", run, True),
        ("POST", "/runs/wait", run, True),
        ("DELETE", f"/threads/{t}/runs/{r}", None, True),
        ("DELETE", f"/threads/{t}", None, True),
        ("DELETE", f"/assistants/{a}", None, True),
    ]


SEARCHES = [
    ("POST", "/assistants/search", {}),
    ("POST", "/assistants/count", {"metadata": {}}),
    ("POST", "/threads/search", {}),
    ("POST", "/threads/count", {}),
]


async def call(
    world: World, key: str | None, method: str, path: str, body: Any
) -> tuple[int, str, httpx.Headers]:
    headers = {"x-api-key": key} if key else {}
    response = await world.http.request(method, path, json=body, headers=headers)
    return response.status_code, response.text, response.headers


async def test_owner_reads_everything(world: World) -> None:
    for method, path, body, mutates in endpoints(world):
        if mutates:
            continue
        status, text, _ = await call(world, world.alice, method, path, body)
        assert status == 200, (method, path, status, text)
    status, text, _ = await call(world, world.alice, "GET", f"/threads/{world.thread_id}", None)
    assert world.marker in text


async def test_other_owner_gets_404_and_no_bytes(world: World) -> None:
    for method, path, body, _ in endpoints(world):
        status, text, headers = await call(world, world.bob, method, path, body)
        assert status == 404, (method, path, status, text)
        assert world.marker not in text, (method, path)
        assert "event:" not in text, (method, path)
        assert headers["content-type"].startswith("application/json"), (method, path)
        assert '"code":"not_found"' in text.replace(" ", "")
    for method, path, body in SEARCHES:
        status, text, _ = await call(world, world.bob, method, path, body)
        assert status == 200, (path, status)
        assert world.marker not in text
    # Bob can still reach what is his (the system assistants).
    status, text, _ = await call(world, world.bob, "GET", "/assistants/echo", None)
    assert status == 200


@pytest.mark.parametrize(
    ("resource", "key"), [("threads", "thread_id"), ("assistants", "assistant_id")]
)
async def test_a_taken_id_answers_the_same_whoever_holds_it(
    world: World, resource: str, key: str
) -> None:
    """Ids are global: nobody else can create one alice holds. Bob gets the very answer
    alice gets for her own id (409 `already_exists`), whatever `if_exists` says, so the
    answer never tells him whose it is; reading it is 404 as for an id nobody holds."""
    taken = world.thread_id if resource == "threads" else world.assistant_id
    extra = {} if resource == "threads" else {"graph_id": "echo"}
    body = {key: taken, **extra}
    own = await call(world, world.alice, "POST", f"/{resource}", body)
    assert own[0] == 409
    assert own[1] == (
        f'{{"detail":"{resource[:-1]} {taken} already exists","code":"already_exists"}}'
    )
    for if_exists in ("raise", "do_nothing"):
        foreign = await call(
            world, world.bob, "POST", f"/{resource}", body | {"if_exists": if_exists}
        )
        assert foreign[:2] == own[:2], if_exists
        assert world.marker not in foreign[1]
    free = str(uuid.uuid4())
    absent = await call(world, world.bob, "GET", f"/{resource}/{free}", None)
    held = await call(world, world.bob, "GET", f"/{resource}/{taken}", None)
    assert (held[0], held[1].replace(taken, free)) == absent[:2]


@pytest.mark.parametrize("who", ["anonymous", "revoked", "garbage"])
async def test_without_valid_credentials_everything_is_401(world: World, who: str) -> None:
    key = {"anonymous": None, "revoked": world.revoked, "garbage": "trellis_aaaaaaaaaaaa_x"}[who]
    for method, path, body, _ in [*endpoints(world), *((m, p, b, False) for m, p, b in SEARCHES)]:
        status, text, headers = await call(world, key, method, path, body)
        assert status == 401, (who, method, path, status)
        assert world.marker not in text
        assert '"code":"unauthorized"' in text.replace(" ", "")
        assert headers["www-authenticate"].startswith("Bearer")
    for public in ("/ok", "/info", "/openapi.json", "/docs"):
        status, _, _ = await call(world, key, "GET", public, None)
        assert status == 200, public


async def test_bearer_header_and_read_only_scope(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.url, timeout=10) as http:
        ok = await http.get(
            f"/threads/{world.thread_id}", headers={"Authorization": f"Bearer {world.alice}"}
        )
        assert ok.status_code == 200
    reader = await create_key(world.settings, "alice", ("read",))
    status, _, _ = await call(world, reader.secret_key, "GET", f"/threads/{world.thread_id}", None)
    assert status == 200
    status, text, _ = await call(world, reader.secret_key, "POST", "/threads", {})
    assert status == 403
    assert '"code":"forbidden"' in text.replace(" ", "")
    status, _, _ = await call(world, reader.secret_key, "POST", "/threads/search", {})
    assert status == 200


async def test_preflight_is_public_and_headers_are_set(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.url, timeout=10) as http:
        preflight = await http.options(
            "/threads",
            headers={
                "Origin": "https://smith.langchain.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key",
            },
        )
        assert preflight.status_code == 200
        denied = await http.get(
            f"/threads/{world.thread_id}", headers={"Origin": "https://smith.langchain.com"}
        )
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == "https://smith.langchain.com"
        assert denied.headers["x-content-type-options"] == "nosniff"
        assert denied.headers["x-frame-options"] == "DENY"
        assert denied.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in denied.headers["content-security-policy"]
        evil = await http.options(
            "/threads",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in evil.headers
        docs = await http.get("/docs")
        assert "content-security-policy" not in docs.headers


async def test_security_events_are_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="trellis.security")
    await call(world, world.revoked, "GET", "/threads/search", None)
    await call(world, world.bob, "GET", f"/threads/{world.thread_id}", None)
    events = [getattr(r, "security_event", None) for r in caplog.records]
    assert "revoked_key_used" in events
    assert "auth_failed" in events
    assert "cross_owner_access" in events
    assert not any(
        world.alice in r.getMessage() or world.alice in str(r.__dict__) for r in caplog.records
    )
