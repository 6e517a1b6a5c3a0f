"""Custom auth from `langgraph.json`: the handlers decide as on the official platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.security import security_settings, trellis

CONFIG = Path(__file__).resolve().parents[2] / "support" / "auth_app" / "langgraph.json"


@pytest.fixture(scope="module")
async def url(security_db: str) -> AsyncIterator[str]:
    settings = security_settings(security_db, auth_mode="custom", graphs_config=CONFIG)
    async with trellis(settings) as base:
        yield base


def client(url: str, user: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer user-{user}"} if user else {}
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=20)


async def test_custom_auth_decides(url: str) -> None:
    async with client(url, None) as anon:
        refused = await anon.post("/threads", json={})
        assert refused.status_code == 401
        assert refused.json() == {"detail": "who are you?", "code": "unauthorized"}
    async with client(url, "dana") as dana, client(url, "erin") as erin:
        created = await dana.post("/threads", json={"metadata": {"owner": "mallory", "k": 1}})
        assert created.status_code == 200
        thread = created.json()
        assert thread["metadata"] == {"owner": "dana", "k": 1}  # the handler stamped the owner
        tid = thread["thread_id"]
        assert (await dana.get(f"/threads/{tid}")).status_code == 200
        assert (await erin.get(f"/threads/{tid}")).status_code == 404

        run = await dana.post(
            f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {"text": "hi"}}
        )
        assert run.status_code == 200, run.text
        runs = (await dana.get(f"/threads/{tid}/runs")).json()
        assert runs[0]["metadata"]["owner"] == "dana"
        assert runs[0]["kwargs"]["auth_user"] == {
            "identity": "dana",
            "display_name": "Dana",
            "is_authenticated": True,
            "permissions": ["member"],
        }

        # A filter narrows what the owner sees: moving the thread out of it hides it.
        moved = await dana.patch(f"/threads/{tid}", json={"metadata": {"owner": "someone"}})
        assert moved.status_code == 200
        assert (await dana.get(f"/threads/{tid}")).status_code == 404
        found = (await dana.post("/threads/search", json={})).json()
        assert tid not in {t["thread_id"] for t in found}
        impossible = await dana.post("/threads/search", json={"metadata": {"owner": "x"}})
        assert impossible.json() == []
        assert (await dana.post("/threads/count", json={})).json() == len(found)

        # A handler returning False is a 403.
        other = (await dana.post("/threads", json={})).json()
        denied = await dana.delete(f"/threads/{other['thread_id']}")
        assert denied.status_code == 403
        assert denied.json()["code"] == "forbidden"
    async with client(url, "admin") as admin:
        assert (await admin.get("/assistants/echo")).status_code == 200


async def test_handlers_see_the_body_the_route_runs(url: str) -> None:
    """A field the guard's parser refuses no longer blanks the value handlers see: the body is
    refused whole, and a parseable one reaches the handler (and the route) as sent."""
    async with client(url, "dana") as dana:
        tid = (await dana.post("/threads", json={})).json()["thread_id"]
        path = f"/threads/{tid}/runs/wait"
        denied = await dana.post(
            path, json={"assistant_id": "echo", "input": {"text": "forbidden"}}
        )
        assert denied.status_code == 403, denied.text
        sneaky = b'{"junk": "\\ud800", "assistant_id": "echo", "input": {"text": "forbidden"}}'
        refused = await dana.post(
            path, content=sneaky, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation_error"
        assert refused.json()["detail"][0]["loc"] == ["body", "junk"]
        allowed = await dana.post(path, json={"assistant_id": "echo", "input": {"text": "fine"}})
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["text"] == "fine!"
        runs = (await dana.get(f"/threads/{tid}/runs")).json()
        assert [r["metadata"]["owner"] for r in runs] == ["dana"]
