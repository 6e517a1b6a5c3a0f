"""`POST /threads/prune` under custom auth: one `threads.delete` event naming every thread, as
the official server sends it; a filter that any listed thread fails prunes none (404)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.security import security_settings, trellis
from tests.support.servers import TEST_GRAPHS

AUTH = """
from typing import Any
from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    if not authorization or not authorization.startswith("Bearer user-"):
        raise Auth.exceptions.HTTPException(status_code=401, detail="who are you?")
    return {"identity": authorization.removeprefix("Bearer user-")}


@auth.on
async def anything(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    return None


@auth.on.threads.delete
async def deletes(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    if not isinstance(value.get("thread_ids"), list):
        return False  # a prune's event names every thread (`thread_ids`), as officially
    return {"team": "red"}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("prune-auth")
    (base / "auth.py").write_text(AUTH)
    graphs = TEST_GRAPHS.parent
    raw: dict[str, object] = {
        "dependencies": [str(graphs)],
        "graphs": {"echo": f"{graphs / 'simple.py'}:echo"},
        "auth": {"path": "./auth.py:auth"},
    }
    path: Path = base / "langgraph.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module")
async def url(security_db: str, config: Path) -> AsyncIterator[str]:
    settings = security_settings(security_db, auth_mode="custom", graphs_config=config)
    async with trellis(settings) as served:
        yield served


async def test_prune_applies_the_delete_filter_to_every_thread(url: str) -> None:
    headers = {"Authorization": "Bearer user-dana"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=20) as dana:
        red = (await dana.post("/threads", json={"metadata": {"team": "red"}})).json()
        blue = (await dana.post("/threads", json={"metadata": {"team": "blue"}})).json()
        both = [red["thread_id"], blue["thread_id"]]
        refused = await dana.post("/threads/prune", json={"thread_ids": both})
        assert refused.status_code == 404, refused.text
        assert (await dana.get(f"/threads/{red['thread_id']}")).status_code == 200

        pruned = await dana.post("/threads/prune", json={"thread_ids": [red["thread_id"]]})
        assert pruned.json() == {"pruned_count": 1}
        assert (await dana.get(f"/threads/{red['thread_id']}")).status_code == 404
        assert (await dana.get(f"/threads/{blue['thread_id']}")).status_code == 200
