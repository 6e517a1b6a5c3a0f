"""Semantic search over the store (`store.index` of the `langgraph.json`) through the official
client: the local MiniLM model, an `openai:` model on a fake endpoint, a user's function."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from server.core.settings import Settings
from server.db.owner_store import scope_of
from tests.server.db.store_support import row, store_server
from tests.support.openai_fake import FakeOpenAI


def _suite() -> str:
    return f"idx-{uuid.uuid4().hex[:8]}"


def _vectors(settings: Settings, namespace: tuple[str, ...], key: str) -> dict[str, int]:
    prefix = ".".join((*scope_of("anonymous"), *namespace))
    with psycopg.connect(settings.psycopg_url) as conn:
        rows = conn.execute(
            "SELECT field_name, length(embedding) / 4 FROM store_trellis_vectors "
            "WHERE prefix = %s AND key = %s",
            (prefix, key),
        ).fetchall()
    return {str(name): int(dims) for name, dims in rows}


def _assert_descending(items: list[dict[str, object]]) -> list[float]:
    scores = [i["score"] for i in items if i["score"] is not None]
    assert all(isinstance(s, float) for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    return scores  # type: ignore[return-value]


async def test_minilm_ranks_the_nearest_text_first(settings: Settings, tmp_path: Path) -> None:
    suite = _suite()
    store = {"index": {"dims": 384, "fields": ["text"]}}
    async with store_server(settings, tmp_path, store) as client:
        docs = {
            "cat": "The cat curled up asleep on the warm rug by the fire.",
            "money": "Quarterly revenue grew twelve percent on strong software sales.",
            "code": "Python is a programming language with dynamic typing.",
            "weather": "Heavy rain and strong winds are expected along the coast tomorrow.",
        }
        for key, text in docs.items():
            await client.store.put_item((suite, "docs"), key, {"text": text})
        await client.store.put_item((suite, "docs"), "plain", {"text": "kitten"}, index=False)
        assert _vectors(settings, (suite, "docs"), "cat") == {"text": 384}
        assert _vectors(settings, (suite, "docs"), "plain") == {}

        found = await client.store.search_items((suite,), query="a kitten sleeping on a carpet")
        keys = [i["key"] for i in found["items"]]
        assert keys[0] == "cat"
        assert keys[-1] == "plain"  # no vector: last, score null
        assert found["items"][-1]["score"] is None
        scores = _assert_descending(found["items"])
        assert len(scores) == 4
        assert scores[0] > scores[1] + 0.1

        money = await client.store.search_items((suite,), query="company earnings and profit")
        assert money["items"][0]["key"] == "money"

        # Filters, limit and offset apply to a ranked search too.
        page = await client.store.search_items((suite,), query="rain storm", limit=1, offset=0)
        assert [i["key"] for i in page["items"]] == ["weather"]
        second = await client.store.search_items((suite,), query="rain storm", limit=1, offset=1)
        assert second["items"][0]["key"] != "weather"
        only = await client.store.search_items(
            (suite,), query="rain storm", filter={"text": docs["code"]}
        )
        assert [i["key"] for i in only["items"]] == ["code"]

        # Replacing an item replaces its vectors; deleting it removes them.
        await client.store.put_item((suite, "docs"), "cat", {"text": "Interest rates and bonds."})
        again = await client.store.search_items((suite,), query="a kitten sleeping on a carpet")
        assert again["items"][0]["key"] != "cat"
        await client.store.delete_item((suite, "docs"), "cat")
        assert _vectors(settings, (suite, "docs"), "cat") == {}

        # Without a query, search lists by recency and scores nothing.
        listed = await client.store.search_items((suite,))
        assert all(i["score"] is None for i in listed["items"])


async def test_fields_choose_what_is_embedded(settings: Settings, tmp_path: Path) -> None:
    suite = _suite()
    store = {"index": {"dims": 384, "fields": ["title"]}}
    async with store_server(settings, tmp_path, store) as client:
        await client.store.put_item(
            (suite,), "a", {"title": "Chocolate cake recipe", "body": "Mountain hiking trails"}
        )
        await client.store.put_item(
            (suite,), "b", {"title": "Mountain hiking trails", "body": "Chocolate cake recipe"}
        )
        # Per item, `index` overrides the configured fields.
        await client.store.put_item(
            (suite,),
            "c",
            {"title": "Tax law", "body": "Baking a chocolate cake", "tags": ["x", "y"]},
            index=["body", "tags[*]"],
        )
        assert _vectors(settings, (suite,), "a") == {"title": 384}
        assert _vectors(settings, (suite,), "c") == {
            "body": 384,
            "tags[*].0": 384,
            "tags[*].1": 384,
        }

        found = await client.store.search_items((suite,), query="chocolate cake")
        keys = [i["key"] for i in found["items"]]
        assert keys.index("a") < keys.index("b")
        assert keys.index("c") < keys.index("b")
        _assert_descending(found["items"])
        hiking = await client.store.search_items((suite,), query="hiking in the mountains")
        assert hiking["items"][0]["key"] == "b"


async def test_expired_items_are_not_ranked_and_refresh_ttl_applies(
    settings: Settings, tmp_path: Path
) -> None:
    suite = _suite()
    store = {"index": {"dims": 384, "fields": ["text"]}, "ttl": {"refresh_on_read": False}}
    async with store_server(settings, tmp_path, store) as client:
        await client.store.put_item((suite,), "gone", {"text": "red apples"}, ttl=0.001)
        await client.store.put_item((suite,), "kept", {"text": "green apples"}, ttl=5)
        before = row(settings, (suite,), "kept")
        assert before is not None
        await asyncio.sleep(0.2)  # "gone" lived 60 ms
        found = await client.store.search_items((suite,), query="apples", refresh_ttl=True)
        assert [i["key"] for i in found["items"]] == ["kept"]
        after = row(settings, (suite,), "kept")
        assert after is not None
        assert after["expires_at"] > before["expires_at"]
        plain = await client.store.search_items((suite,), query="apples")
        assert [i["key"] for i in plain["items"]] == ["kept"]
        still = row(settings, (suite,), "kept")
        assert still is not None
        assert still["expires_at"] == after["expires_at"]  # refresh_on_read false


async def test_openai_embeddings_on_the_configured_endpoint(
    settings: Settings, tmp_path: Path
) -> None:
    suite = _suite()
    store = {"index": {"dims": 16, "embed": "openai:fake-embed", "fields": ["text"]}}
    async with FakeOpenAI(api_key="sk-test") as fake:
        overrides = {"openai_base_url": fake.base_url, "openai_api_key": SecretStr("sk-test")}
        async with store_server(settings, tmp_path, store, **overrides) as client:
            await client.store.put_item((suite,), "birds", {"text": "blue birds sing songs"})
            await client.store.put_item((suite,), "cars", {"text": "fast red cars race"})
            await client.store.put_item((suite,), "boats", {"text": "old boats float slowly"})
            found = await client.store.search_items((suite,), query="red cars")
            assert found["items"][0]["key"] == "cars"
            _assert_descending(found["items"])
            assert fake.embedding_requests
            assert {r["model"] for r in fake.embedding_requests} == {"fake-embed"}
            inputs = [r["input"] for r in fake.embedding_requests]
            assert ["red cars"] in inputs

            # The endpoint failing: 503 embedder_unavailable, and nothing is written.
            fake.fail_next(50, status=500)
            async with httpx.AsyncClient(base_url=str(client.http.client.base_url)) as http:
                put = await http.put(
                    "/store/items",
                    json={"namespace": [suite], "key": "new", "value": {"text": "x"}},
                    timeout=60,
                )
                assert put.status_code == 503, put.text
                assert put.json()["code"] == "embedder_unavailable"
                search = await http.post(
                    "/store/items/search",
                    json={"namespace_prefix": [suite], "query": "red cars"},
                    timeout=60,
                )
                assert search.status_code == 503
                assert search.json()["code"] == "embedder_unavailable"
            assert row(settings, (suite,), "new") is None


EMBED_MODULE = """
KEYWORDS = ["sun", "moon", "star"]
calls = []

def embed(texts):
    calls.append(list(texts))
    if any("explode" in t for t in texts):
        raise RuntimeError("the user's model broke")
    return [[float(t.count(k)) for k in KEYWORDS] for t in texts]

async def aembed(texts):
    return embed(texts)
"""


@pytest.mark.parametrize("name", ["embed", "aembed"])
async def test_a_user_function_embeds(settings: Settings, tmp_path: Path, name: str) -> None:
    suite = _suite()
    (tmp_path / "my_embed.py").write_text(EMBED_MODULE)
    store = {"index": {"dims": 3, "embed": f"./my_embed.py:{name}"}}
    async with store_server(settings, tmp_path, store) as client:
        await client.store.put_item((suite,), "s", {"t": "sun sun sun"})
        await client.store.put_item((suite,), "m", {"t": "moon moon"})
        await client.store.put_item((suite,), "mix", {"t": "moon sun star star"})
        found = await client.store.search_items((suite,), query="the moon")
        assert [i["key"] for i in found["items"]] == ["m", "mix", "s"]
        assert found["items"][0]["score"] == pytest.approx(1.0)
        assert found["items"][2]["score"] == pytest.approx(0.0)
        async with httpx.AsyncClient(base_url=str(client.http.client.base_url)) as http:
            answer = await http.post(
                "/store/items/search", json={"namespace_prefix": [suite], "query": "explode"}
            )
        assert answer.status_code == 503
        assert answer.json()["code"] == "embedder_unavailable"
        assert "my_embed.py" in answer.json()["detail"]


RECALL_GRAPH = """
from typing import TypedDict

from langgraph.config import get_store
from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    ns: str
    query: str
    found: list


async def recall(state: State) -> State:
    items = await get_store().asearch((state["ns"],), query=state["query"], limit=3)
    return {"found": [[item.key, item.score] for item in items]}


graph = StateGraph(State).add_node(recall).add_edge(START, "recall").compile()
"""


async def test_a_graph_searches_its_owners_items_semantically(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "recall.py").write_text(RECALL_GRAPH)
    store = {"index": {"dims": 384, "fields": ["text"]}}
    graphs = {"recall": "./recall.py:graph"}
    ns = _suite()
    async with store_server(settings, tmp_path, store, graphs) as client:
        await client.store.put_item((ns,), "dentist", {"text": "Dentist appointment Tuesday"})
        await client.store.put_item((ns,), "milk", {"text": "Buy milk and eggs"})
        await client.store.put_item((ns,), "car", {"text": "Car needs an oil change"})
        state = await client.runs.wait(
            None, "recall", input={"ns": ns, "query": "groceries to pick up at the shop"}
        )
        assert isinstance(state, dict)
        found = state["found"]
        assert found[0][0] == "milk"
        scores = [score for _, score in found]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("condition", [{"$foo": 1}, {"nested": 1}])
async def test_an_unknown_filter_operator_is_422_not_500(
    http: httpx.AsyncClient, condition: dict[str, int]
) -> None:
    answer = await http.post(
        "/store/items/search",
        json={"namespace_prefix": ["x"], "filter": {"a": condition}, "query": "q"},
    )
    assert answer.status_code == 422, answer.text
    assert "unsupported operator" in answer.text
    assert "filter" in answer.text
