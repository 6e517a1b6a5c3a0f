"""Byte caches with a time-to-live, the keys that address them, and a caching embedder.

`Cache` is the protocol tools depend on. `RedisCache` is the shared one;
`MemoryCache` is a bounded in-process LRU for tests and for running without
Redis. Caches are losable by design: `RedisCache` treats an unreachable Redis
as a miss (and a skipped write) and logs it, so a Redis outage slows Trellis
down instead of failing runs.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import orjson
import redis.asyncio
from redis.exceptions import RedisError

from tools import telemetry
from tools.embeddings import Embedder

__all__ = ["Cache", "CachedEmbedder", "MemoryCache", "RedisCache", "cache_key"]

logger = logging.getLogger(__name__)


class Cache(Protocol):
    """Stores bytes under string keys for a limited time."""

    async def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or None when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Store `value` under `key` for `ttl_seconds`."""
        ...


def cache_key(kind: str, **parts: object) -> str:
    """Stable key `kind:<sha256>` for JSON-serialisable parts (model, prompt version, inputs)."""
    if not kind or ":" in kind:
        raise ValueError("kind must be a non-empty name without ':'")
    encoded = orjson.dumps(
        parts,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
    )
    return f"{kind}:{hashlib.sha256(encoded).hexdigest()}"


class MemoryCache:
    """In-process LRU cache holding at most `max_entries` unexpired values."""

    def __init__(
        self, *, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        """The value under `key` if present and unexpired (marks it recently used)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Store `value`, evicting the least recently used entries beyond the bound."""
        _check_ttl(ttl_seconds)
        self._entries[key] = (self._clock() + ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class RedisCache:
    """`Cache` on Redis `SET ... EX`; keys are namespaced by `prefix`.

    After a failed Redis call the cache stays out of Redis for
    `retry_after_seconds`: during an outage every lookup is an instant miss
    instead of a wait for the client's connection retries.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "trellis:cache:",
        retry_after_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self._retry_after = retry_after_seconds
        self._clock = clock
        self._down_until = float("-inf")

    @property
    def available(self) -> bool:
        """False while the cache is skipping Redis after a failure."""
        return self._clock() >= self._down_until

    def _failed(self, operation: str, exc: Exception) -> None:
        self._down_until = self._clock() + self._retry_after
        logger.warning(
            "cache %s skipped, Redis unavailable (retrying in %.0f s): %s",
            operation,
            self._retry_after,
            exc,
        )

    async def get(self, key: str) -> bytes | None:
        """The value under `key`; None on a miss or when Redis is unreachable."""
        if not self.available:
            return None
        try:
            value = await self._client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._failed("read", exc)
            return None
        if value is None or isinstance(value, bytes):
            return value
        raise TypeError("RedisCache needs a client created with decode_responses=False")

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Store `value` with an expiry; a Redis failure is logged and ignored."""
        _check_ttl(ttl_seconds)
        if not self.available:
            return
        try:
            await self._client.set(self.prefix + key, value, ex=ttl_seconds)
        except (RedisError, OSError) as exc:
            self._failed("write", exc)


def _check_ttl(ttl_seconds: int) -> None:
    if ttl_seconds < 1:
        raise ValueError("ttl_seconds must be at least 1")


class CachedEmbedder:
    """An `Embedder` that remembers vectors per (model, text) in a `Cache`."""

    def __init__(self, embedder: Embedder, cache: Cache, *, ttl_seconds: int = 7 * 86400) -> None:
        _check_ttl(ttl_seconds)
        self._embedder = embedder
        self._cache = cache
        self._ttl = ttl_seconds
        self.name = embedder.name
        self.dimension = embedder.dimension

    def _key(self, text: str) -> str:
        return cache_key("embedding", model=self.name, dimension=self.dimension, text=text)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Cached vectors for known texts; the rest embedded in one call and stored."""
        keys = [self._key(t) for t in texts]
        vectors: list[list[float] | None] = []
        for key in keys:
            # Sequential on purpose: one round trip each, no connection-pool burst.
            vector = self._decode(await self._cache.get(key))
            telemetry.current().cache_lookup("embedding", "miss" if vector is None else "hit")
            vectors.append(vector)
        missing = list(dict.fromkeys(t for t, v in zip(texts, vectors, strict=True) if v is None))
        if missing:
            fresh: dict[str, list[float]] = {}
            for text, vector in zip(missing, await self._embedder.embed(missing), strict=True):
                encoded = np.asarray(vector, dtype="<f4").tobytes()
                await self._cache.set(self._key(text), encoded, self._ttl)
                # Returned as stored, so a hit and a miss give identical vectors.
                fresh[text] = self._decode(encoded) or []
            vectors = [
                v if v is not None else fresh[t] for t, v in zip(texts, vectors, strict=True)
            ]
        return [v for v in vectors if v is not None]

    def _decode(self, raw: bytes | None) -> list[float] | None:
        if raw is None or len(raw) != 4 * self.dimension:
            return None
        values: list[float] = np.frombuffer(raw, dtype="<f4").astype(np.float64).tolist()
        return values
