"""Documents one owner ingests never reach another owner's runs, whatever collection name
the other owner puts in `context.collection`; only collections the operator shares
(`COLLECTION`, `SHARED_COLLECTIONS`) are read by everyone, and ingest makes no new ones."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.core.settings import ROOT, Settings
from server.ops.ingest import ingest_local
from tests.support.api import parse_sse
from tests.support.security import create_key, security_settings, trellis
from tools.retrieval import ingest_documents, owner_collection
from tools.toolbox import installed_toolbox

QUESTION = "What is the nightjar passphrase of the lighthouse keepers?"


@dataclass
class World:
    settings: Settings
    alice: httpx.AsyncClient
    bob: httpx.AsyncClient
    secret: str
    """In alice's own document only."""
    shared: str
    """In a document of the shared `team` collection."""


def document(marker: str) -> dict[str, str]:
    return {
        "source": f"{marker}.md",
        "text": f"# Lighthouse keepers\n\nThe nightjar passphrase of the lighthouse keepers "
        f"is {marker}.",
    }


@pytest.fixture(scope="module")
async def world(security_db: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    settings = security_settings(
        security_db,
        auth_mode="api_key",
        graphs_config=ROOT / "langgraph.json",
        embedded_data_dir=tmp_path_factory.mktemp("trellis-data"),
        seed_sample_corpus=False,
        shared_collections=["team"],
        openai_api_key=None,
        openai_base_url=None,
    )
    async with trellis(settings) as url:
        alice_key = await create_key(settings, "alice")
        bob_key = await create_key(settings, "bob")
        secret, shared = f"ALICE-{uuid.uuid4().hex}", f"TEAM-{uuid.uuid4().hex}"
        toolbox = installed_toolbox()
        assert toolbox is not None
        # What `trellis ingest --collection team` does (the server holds the embedded store).
        await ingest_documents(
            [(document(shared)["source"], document(shared)["text"])],
            index=toolbox.index,
            embedder=toolbox.embedder,
            collection="team",
        )
        async with (
            httpx.AsyncClient(
                base_url=url, headers={"x-api-key": alice_key.secret_key}, timeout=120
            ) as alice,
            httpx.AsyncClient(
                base_url=url, headers={"x-api-key": bob_key.secret_key}, timeout=120
            ) as bob,
        ):
            ingested = await alice.post("/documents/ingest", json={"documents": [document(secret)]})
            assert ingested.status_code == 200, ingested.text
            private = await alice.post(
                "/documents/ingest",
                json={"documents": [document(secret + "-P")], "collection": "private"},
            )
            assert private.status_code == 200, private.text
            yield World(settings, alice, bob, secret, shared)


@dataclass
class Answer:
    text: str
    """Every event of the run, as sent."""
    error: dict[str, Any] | None
    """The run's `error` event, if it failed."""
    values: dict[str, Any]
    """The last state the run streamed."""

    @property
    def passages(self) -> str:
        """The text of every passage the run retrieved."""
        return " ".join(p["text"] for p in self.values.get("passages", []))


async def ask(client: httpx.AsyncClient, collection: str | None) -> Answer:
    """Stream a run asking QUESTION, with `context.collection` when given."""
    context = {"collection": collection} if collection is not None else {}
    response = await client.post(
        "/runs/stream",
        json={
            "assistant_id": "assistant",
            "input": {"messages": [{"role": "user", "content": QUESTION}]},
            "context": context,
            "stream_mode": ["values"],
        },
    )
    assert response.status_code == 200, response.text
    events, _ = parse_sse(response.content)
    errors = [e.data for e in events if e.event == "error"]
    values = [e.data for e in events if e.event == "values"]
    return Answer(response.text, errors[0] if errors else None, values[-1] if values else {})


async def test_the_owner_finds_their_own_document(world: World) -> None:
    mine = await ask(world.alice, None)
    assert world.secret in mine.passages
    assert world.secret + "-P" in (await ask(world.alice, "private")).passages


@pytest.mark.parametrize(
    "collection",
    [
        None,
        "private",
        owner_collection("documents", "alice"),
        owner_collection("private", "alice"),
        owner_collection("documents", "alice").upper(),
        owner_collection("documents", "alice") + "x",
        owner_collection("documents", "alice").removeprefix("documents"),
        "documents__owner_",
        "../" + owner_collection("documents", "alice"),
    ],
)
async def test_another_owner_never_reads_it(world: World, collection: str | None) -> None:
    answer = await ask(world.bob, collection)
    assert world.secret not in answer.text
    # Either an answer from what bob may read, or a refusal of the name itself.
    if answer.error is not None:
        assert answer.error["error"] == "CollectionRefused"
        assert "__owner_" in str(collection).lower()
        assert re.search("reserved|not valid", answer.error["message"])
    else:
        assert answer.values["retrieval"]["collection"] == (collection or "documents")


async def test_a_shared_collection_serves_everyone(world: World) -> None:
    assert world.shared in (await ask(world.alice, "team")).passages
    assert world.shared in (await ask(world.bob, "team")).passages
    # Unshared, the same name leads nowhere near it.
    assert world.shared not in (await ask(world.bob, "Team")).text


async def test_http_ingest_refuses_reserved_names_and_creates_no_shared_collection(
    world: World,
) -> None:
    name = owner_collection("documents", "bob")
    refused = await world.alice.post(
        "/documents/ingest", json={"documents": [document("X")], "collection": name}
    )
    assert refused.status_code == 422
    assert "reserved" in refused.text
    # Bob's ingest into a name he chose lands in his own part of it, unseen by alice.
    marker = f"BOB-{uuid.uuid4().hex}"
    stored = await world.bob.post(
        "/documents/ingest", json={"documents": [document(marker)], "collection": "fresh"}
    )
    assert stored.status_code == 200, stored.text
    assert marker in (await ask(world.bob, "fresh")).passages
    assert marker not in (await ask(world.alice, "fresh")).text


@pytest.mark.parametrize("collection", ["elsewhere", "documents__owner_0123456789abcdef0123"])
async def test_local_ingest_refuses_an_unshared_collection(
    world: World, tmp_path: Path, collection: str
) -> None:
    (tmp_path / "a.md").write_text("some text", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"not shared|reserved"):
        await ingest_local(
            [str(tmp_path / "a.md")],
            settings=world.settings,
            collection=collection,
            progress=lambda done, total: None,
        )
