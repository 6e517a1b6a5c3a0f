"""The tools layer's telemetry hooks, as the server installs them: retries, fallbacks,
cache hits and misses, retrievals, each moving its metric by exactly the work done."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from prometheus_client import REGISTRY

from server.runs.run_telemetry import ToolsTelemetry
from tests.support.openai_fake import FakeOpenAI, Reply
from tests.tools.models.support import PASSAGES
from tools import telemetry
from tools.cache import CachedEmbedder, MemoryCache
from tools.models.openai_provider import ModelRoles, OpenAIConfig, OpenAIProvider
from tools.retrieval import QdrantIndex


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def installed() -> Iterator[None]:
    telemetry.install(ToolsTelemetry())
    yield
    telemetry.uninstall()


async def test_model_retries_fallbacks_and_the_answer_cache() -> None:
    before = {
        "retries": sample("trellis_tool_retries_total", operation="model"),
        "fallbacks": sample(
            "trellis_tool_fallbacks_total", operation="model", fallback="fallback_model"
        ),
        "hits": sample("trellis_cache_lookups_total", cache="chat", result="hit"),
        "misses": sample("trellis_cache_lookups_total", cache="chat", result="miss"),
    }
    async with FakeOpenAI() as fake:
        provider = OpenAIProvider(
            OpenAIConfig(
                api_key="sk-test",
                base_url=fake.base_url,
                models=ModelRoles(retriever="answer-model"),
                fallback_model="backup-model",
                max_retries=2,
                backoff_initial=0.001,
                backoff_max=0.01,
            ),
            cache=MemoryCache(),
        )
        fake.fail_next(10, status=503, model="answer-model")
        fake.script(Reply.text("From the backup [1]."))
        first = await provider.draft_answer("Where?", PASSAGES)
        again = await provider.draft_answer("Where?", PASSAGES)  # the same call: cached
        assert fake.models_called() == ["answer-model"] * 3 + ["backup-model"]
    assert first.text == again.text == "From the backup [1]."
    retries = sample("trellis_tool_retries_total", operation="model") - before["retries"]
    assert retries == 2  # the primary's 2nd and 3rd attempts; the backup answered at once
    fallbacks = sample("trellis_tool_fallbacks_total", operation="model", fallback="fallback_model")
    assert fallbacks - before["fallbacks"] == 1
    hits = sample("trellis_cache_lookups_total", cache="chat", result="hit")
    misses = sample("trellis_cache_lookups_total", cache="chat", result="miss")
    assert (hits - before["hits"], misses - before["misses"]) == (1, 1)


class Unit:
    """A 4-dimensional embedder: each text a one-hot vector by its length."""

    name = "unit-4"
    dimension = 4

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0 if i == len(t) % 4 else 0.0 for i in range(4)] for t in texts]


async def test_embedding_cache_and_retrieval() -> None:
    hit = ("trellis_cache_lookups_total", (("cache", "embedding"), ("result", "hit")))
    miss = ("trellis_cache_lookups_total", (("cache", "embedding"), ("result", "miss")))
    searches = ("trellis_retrieval_duration_seconds_count", (("collection", "telemetry_docs"),))
    found = ("trellis_retrieval_hits_total", (("collection", "telemetry_docs"),))
    before = {key: sample(key[0], **dict(key[1])) for key in (hit, miss, searches, found)}

    embedder = CachedEmbedder(Unit(), MemoryCache(), ttl_seconds=60)
    await embedder.embed(["a", "bb"])
    vectors = await embedder.embed(["a", "ccc"])
    async with QdrantIndex(location=":memory:") as index:
        await index.ensure_collection("telemetry_docs", 4)
        await index.upsert_document("telemetry_docs", "d1", "a.md", ["x", "y"], vectors)
        passages = await index.search("telemetry_docs", vectors[0], top_k=5)
        assert await index.search("telemetry_docs", vectors[0], top_k=1) == passages[:1]

    moved = {key: sample(key[0], **dict(key[1])) - before[key] for key in before}
    assert moved[hit] == 1  # "a", the second time
    assert moved[miss] == 3  # "a", "bb", "ccc"
    assert moved[searches] == 2
    assert moved[found] == len(passages) + 1
