from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tools.cache import CachedEmbedder, MemoryCache, RedisCache, cache_key
from tools.embeddings import Embedder, MiniLMEmbedder

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_key_is_stable_and_order_independent() -> None:
    a = cache_key("chat", model="m", prompt_version=2, params={"t": 0.0, "k": [1, 2]}, q="hi")
    b = cache_key("chat", q="hi", params={"k": [1, 2], "t": 0.0}, prompt_version=2, model="m")
    assert a == b
    assert a.startswith("chat:")
    assert len(a) == len("chat:") + 64
    assert cache_key("chat", model="m", q="hi!") != cache_key("chat", model="m", q="hi")
    assert cache_key("embedding", model="m") != cache_key("chat", model="m")
    with pytest.raises(ValueError, match="kind"):
        cache_key("a:b", x=1)


async def test_memory_cache_expires_entries() -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    await cache.set("k", b"v", ttl_seconds=10)
    clock.now += 9.9
    assert await cache.get("k") == b"v"
    clock.now += 0.2
    assert await cache.get("k") is None
    assert len(cache) == 0
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", b"v", ttl_seconds=0)


async def test_memory_cache_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.set("a", b"1", 60)
    await cache.set("b", b"2", 60)
    assert await cache.get("a") == b"1"  # "b" is now the least recently used
    await cache.set("c", b"3", 60)
    assert await cache.get("b") is None
    assert (await cache.get("a"), await cache.get("c")) == (b"1", b"3")
    assert len(cache) == 2


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.asyncio.Redis]:
    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_cache(redis_client: redis.asyncio.Redis) -> AsyncIterator[RedisCache]:
    prefix = f"trellis-test:{uuid.uuid4().hex}:"
    yield RedisCache(redis_client, prefix=prefix)
    keys = [key async for key in redis_client.scan_iter(match=prefix + "*")]
    if keys:
        await redis_client.delete(*keys)


async def test_redis_cache_round_trip_with_ttl(
    redis_cache: RedisCache, redis_client: redis.asyncio.Redis
) -> None:
    assert await redis_cache.get("missing") is None
    await redis_cache.set("k", b"\x00binary\xff", ttl_seconds=30)
    assert await redis_cache.get("k") == b"\x00binary\xff"
    ttl = await redis_client.ttl(redis_cache.prefix + "k")
    assert 0 < ttl <= 30


async def test_redis_outage_is_a_fast_miss_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1 of the loopback interface.
    client: redis.asyncio.Redis = redis.asyncio.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    clock = Clock()
    try:
        cache = RedisCache(client, prefix="unused:", retry_after_seconds=5, clock=clock)
        assert await cache.get("k") is None
        assert "Redis unavailable" in caplog.text
        assert not cache.available
        # While Redis is marked down the client is not even asked.
        await client.aclose()
        await cache.set("k", b"v", ttl_seconds=5)
        assert await cache.get("k") is None
        clock.now += 5
        assert cache.available
    finally:
        await client.aclose()


class CountingEmbedder:
    """Wraps a real embedder and records what it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return await self.inner.embed(texts)


async def test_cached_embedder_only_embeds_new_texts(
    minilm: MiniLMEmbedder, redis_cache: RedisCache
) -> None:
    counting = CountingEmbedder(minilm)
    cached = CachedEmbedder(counting, redis_cache, ttl_seconds=60)
    assert (cached.name, cached.dimension) == (minilm.name, 384)

    first = await cached.embed(["alpha", "beta", "alpha"])
    assert counting.calls == [["alpha", "beta"]]
    second = await cached.embed(["beta", "gamma", "alpha"])
    assert counting.calls[-1] == ["gamma"]
    assert second[0] == first[1]
    assert second[2] == first[0] == first[2]
    np.testing.assert_allclose(first[0], (await minilm.embed(["alpha"]))[0], atol=1e-6)
    assert await cached.embed([]) == []


async def test_cache_keys_include_the_model_name(minilm: MiniLMEmbedder) -> None:
    cache = MemoryCache()
    counting = CountingEmbedder(minilm)
    await CachedEmbedder(counting, cache).embed(["same text"])
    renamed = CountingEmbedder(minilm)
    renamed.name = "another-model"
    await CachedEmbedder(renamed, cache).embed(["same text"])
    assert renamed.calls == [["same text"]]
