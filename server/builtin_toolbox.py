"""Composition root of the built-in graph's tools: settings in, a `Toolbox` out.

The only place that picks OpenAI versus the offline provider, Qdrant server
versus embedded, Redis versus an in-process cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

from redis.asyncio import Redis

from server.core.settings import Settings
from server.core.types import JsonObject
from tools.cache import Cache, CachedEmbedder, MemoryCache, RedisCache
from tools.embeddings import Embedder, MiniLMEmbedder, OpenAIEmbedder
from tools.images import (
    OCR_INSTALL_HINT,
    DecodeBudget,
    ImageLimits,
    find_tesseract,
    return_large_frees_to_system,
)
from tools.models.offline_provider import OfflineProvider
from tools.models.openai_provider import (
    ModelRoles,
    OpenAIConfig,
    OpenAIProvider,
    check_endpoint,
    endpoint_host,
)
from tools.models.provider import ModelProvider
from tools.net import PublicFetcher
from tools.retrieval import QdrantIndex, sample_corpus_dir
from tools.toolbox import Toolbox

log = logging.getLogger("trellis")


def qdrant_path(settings: Settings) -> Path:
    """The embedded Qdrant data directory."""
    return settings.qdrant_path or Path(settings.embedded_data_dir) / "qdrant"


def open_index(settings: Settings) -> QdrantIndex:
    """Qdrant as configured: a server at `QDRANT_URL`, else embedded under `QDRANT_PATH`."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantIndex(url=settings.qdrant_url, api_key=key)
    path = qdrant_path(settings)
    path.mkdir(parents=True, exist_ok=True)
    return QdrantIndex(path=str(path))


def open_embedder(settings: Settings) -> Embedder:
    """OpenAI embeddings when a key and an embedding model are configured; local MiniLM else."""
    if settings.openai_api_key is not None and settings.openai_embedding_model:
        return OpenAIEmbedder(
            model=settings.openai_embedding_model,
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
        )
    return MiniLMEmbedder()


def uses_openai(settings: Settings) -> bool:
    """Whether an OpenAI-compatible endpoint is configured."""
    return settings.openai_api_key is not None or settings.openai_base_url is not None


def build_toolbox(settings: Settings, redis: Redis | None) -> Toolbox:
    """The tools the built-in graph runs with in this process."""
    cache: Cache = RedisCache(redis) if redis is not None else MemoryCache()
    embedder = open_embedder(settings)
    provider: ModelProvider
    if uses_openai(settings):
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
        model = settings.openai_model
        provider = OpenAIProvider(
            OpenAIConfig(
                api_key=key,
                base_url=settings.openai_base_url,
                models=ModelRoles(supervisor=model, retriever=model, vision=model, critic=model),
                fallback_model=settings.openai_fallback_model,
                timeout=settings.openai_timeout_seconds,
                max_retries=settings.openai_max_retries,
                deadline=settings.openai_deadline_seconds,
                cache_ttl=settings.response_cache_ttl_seconds,
            ),
            cache=cache,
        )
    else:
        provider = OfflineProvider(embedder)
    limits = ImageLimits(max_pixels=settings.image_max_pixels)
    return_large_frees_to_system()  # else threads keep freed pixels past the decode budget
    return Toolbox(
        provider=provider,
        embedder=CachedEmbedder(embedder, cache, ttl_seconds=settings.embedding_cache_ttl_seconds),
        index=open_index(settings),
        collection=settings.collection,
        fetcher=PublicFetcher(
            max_bytes=limits.max_bytes, timeout=settings.image_fetch_timeout_seconds
        ),
        image_limits=limits,
        decode_budget=DecodeBudget(settings.image_decode_budget_mb * 2**20),
        cache=cache,
        tesseract_cmd=settings.tesseract_cmd,
        seed_dir=sample_corpus_dir() if settings.seed_sample_corpus else None,
        shared_collections=frozenset(settings.shared_collections),
    )


def describe_toolbox(settings: Settings, toolbox: Toolbox) -> JsonObject:
    """What `/info` reports about the built-in graph's tools (never a secret); one warning
    line in the log for each that is missing."""
    ocr = find_tesseract(settings.tesseract_cmd) is not None
    if not ocr:
        log.warning(
            "OCR unavailable: no tesseract at TESSERACT_CMD=%r, so image questions are "
            "answered without reading their text; %s",
            settings.tesseract_cmd,
            OCR_INSTALL_HINT,
            extra={"event": "ocr_unavailable", "tesseract_cmd": settings.tesseract_cmd},
        )
    model: JsonObject = {"provider": toolbox.provider.name}
    if uses_openai(settings):
        model["model"] = settings.openai_model
        model["base_url_host"] = endpoint_host(settings.openai_base_url)
        model["endpoint_check"] = "pending"
    return {"capabilities": {"ocr": ocr}, "model": model}


async def check_model_endpoint(settings: Settings, info: JsonObject) -> None:
    """Ask the OpenAI-compatible endpoint for its models once, at startup, without holding
    startup up: a warning line when it does not answer 2xx, and the outcome in `info`."""
    if not uses_openai(settings):
        return
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
    problem = await check_endpoint(settings.openai_base_url, key, timeout=5.0)
    model = info.get("model")
    if isinstance(model, dict):
        model["endpoint_check"] = "ok" if problem is None else problem
    if problem is not None:
        log.warning(
            "model endpoint check failed: %s; the built-in assistant's runs will fail "
            "until it answers (check OPENAI_BASE_URL and OPENAI_API_KEY)",
            problem,
            extra={
                "event": "model_endpoint_check",
                "base_url_host": endpoint_host(settings.openai_base_url),
            },
        )
