"""The infrastructure the assistant's nodes use, installed once per process.

This module owns the hand-over between the composition root and the graph:
the server builds a ``Toolbox`` from its settings at startup and calls
``install_toolbox``; nodes call ``current_toolbox()``. The model never sees any
of it. When nothing was installed (``langgraph dev``, a notebook, a test that
does not care), ``current_toolbox()`` lazily builds an offline default: the
local MiniLM embedder behind an in-process embedding cache, an embedded Qdrant
under ``.trellis/qdrant`` in the working directory, the offline model provider,
an in-process cache, and the guarded public fetcher; that default seeds the
sample corpus into an empty collection on first use so the graph answers
questions out of the box.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from tools.cache import Cache, CachedEmbedder, MemoryCache
from tools.embeddings import Embedder, MiniLMEmbedder
from tools.images import DecodeBudget, ImageLimits, return_large_frees_to_system
from tools.models.offline_provider import OfflineProvider
from tools.models.provider import ModelProvider
from tools.net import PublicFetcher, UrlFetcher
from tools.retrieval import (
    CollectionScope,
    QdrantIndex,
    VectorIndex,
    ingest_paths,
    resolve_collection,
    sample_corpus_dir,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "Toolbox",
    "current_toolbox",
    "default_toolbox",
    "install_toolbox",
    "uninstall_toolbox",
]

DEFAULT_COLLECTION = "documents"
DEFAULT_DECODE_BUDGET = 256 * 2**20
"""Bytes of pixel memory image decodes may hold at once (``IMAGE_DECODE_BUDGET_MB``)."""


@dataclass
class Toolbox:
    """Everything a node may touch besides its state and context."""

    provider: ModelProvider
    embedder: Embedder
    index: VectorIndex
    collection: str
    fetcher: UrlFetcher
    """Fetches image URLs under the outbound policy (``tools.net.PublicFetcher``)."""
    image_limits: ImageLimits
    cache: Cache
    decode_budget: DecodeBudget = field(default_factory=lambda: DecodeBudget(DEFAULT_DECODE_BUDGET))
    """Pixel memory this process's image decodes may hold at once (one per process)."""
    tesseract_cmd: str = "tesseract"
    """The OCR command the vision agent runs: a name on the PATH or a path."""
    seed_dir: Path | None = None
    """When set, ``prepare()`` ingests this folder into an empty collection once."""
    shared_collections: frozenset[str] = frozenset()
    """Collections besides ``collection`` that every caller reads (the operator's allow-list);
    any other name a caller gives stays inside the caller's own part of it."""
    _prepared: bool = field(default=False, init=False, repr=False)
    _lock: asyncio.Lock | None = field(default=None, init=False, repr=False)

    async def prepare(self) -> None:
        """Make sure the default collection exists (and is seeded, when configured)."""
        if self._prepared:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._prepared:
                return
            await self.index.ensure_collection(self.collection, self.embedder.dimension)
            if self.seed_dir is not None and await self.index.count(self.collection) == 0:
                await ingest_paths(
                    [self.seed_dir],
                    index=self.index,
                    embedder=self.embedder,
                    collection=self.collection,
                )
            self._prepared = True

    def resolve_collection(self, requested: str | None, owner: str | None) -> CollectionScope:
        """Where `owner`'s collection name `requested` leads (``tools.retrieval``'s
        ``resolve_collection``); raises ``CollectionRefused`` for a name it may not use."""
        return resolve_collection(
            requested, default=self.collection, shared=self.shared_collections, owner=owner
        )


_installed: Toolbox | None = None


def install_toolbox(toolbox: Toolbox) -> None:
    """Make ``toolbox`` the one ``current_toolbox()`` returns (called at startup)."""
    global _installed
    _installed = toolbox


def uninstall_toolbox() -> None:
    """Forget the installed toolbox (shutdown, tests)."""
    global _installed
    _installed = None


def default_toolbox(root: Path | None = None) -> Toolbox:
    """Build the offline default: MiniLM, embedded Qdrant, offline provider, memory cache."""
    base = (root or Path.cwd()) / ".trellis" / "qdrant"
    base.mkdir(parents=True, exist_ok=True)
    cache = MemoryCache()
    # The critic re-embeds the evidence sentences the drafting step just embedded.
    embedder = CachedEmbedder(MiniLMEmbedder(), cache)
    limits = ImageLimits()
    return_large_frees_to_system()  # else threads keep freed pixels past the decode budget
    return Toolbox(
        provider=OfflineProvider(embedder),
        embedder=embedder,
        index=QdrantIndex(path=str(base)),
        collection=DEFAULT_COLLECTION,
        fetcher=PublicFetcher(max_bytes=limits.max_bytes, timeout=10.0),
        image_limits=limits,
        cache=cache,
        seed_dir=sample_corpus_dir(),
    )


def installed_toolbox() -> Toolbox | None:
    """The toolbox the server installed, if any (no lazy default)."""
    return _installed


def current_toolbox() -> Toolbox:
    """The installed toolbox, or the lazily built offline default."""
    global _installed
    if _installed is None:
        _installed = default_toolbox()
    return _installed
