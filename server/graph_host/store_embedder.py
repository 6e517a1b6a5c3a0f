"""The embedder of the store's semantic index, from `langgraph.json`'s `store.index.embed`.

- absent: the local all-MiniLM-L6-v2 Trellis ships (`tools.embeddings.MiniLMEmbedder`, no network);
- `openai:<model>`: the OpenAI-compatible endpoint of the settings (`OPENAI_BASE_URL`,
  `OPENAI_API_KEY`), asked for `dims`-long vectors;
- `./file.py:name` (relative to the `langgraph.json`) or `package.module:name`: the user's
  function `texts -> vectors` (sync or async) or a LangChain `Embeddings` object, as
  `langgraph_api.graph.resolve_embeddings` accepts.

A wrong `embed` raises `StoreConfigError` naming the key when the server starts; a failing
embedder is the store's to report (`EmbedderUnavailable`).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

from langchain_core.embeddings import Embeddings

from server.core.settings import Settings
from server.core.store_config import StoreConfigError, StoreIndex
from server.graph_host.registry import GraphLoadError, load_module
from tools.embeddings import Embedder, MiniLMEmbedder, OpenAIEmbedder

KEY = "store.index.embed"


class FunctionEmbedder:
    """A user's embedding function or LangChain `Embeddings`, checked for `dims`."""

    def __init__(self, name: str, target: object, dimension: int) -> None:
        self.name = name
        self.dimension = dimension
        self._target = target

    async def _call(self, texts: list[str]) -> object:
        target = self._target
        if isinstance(target, Embeddings):
            return await target.aembed_documents(texts)
        assert callable(target)
        if inspect.iscoroutinefunction(target):
            return await target(texts)
        result = await asyncio.to_thread(target, texts)
        return await result if inspect.isawaitable(result) else result

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed `texts`; a result of the wrong shape raises `ValueError`."""
        if not texts:
            return []
        raw = await self._call(list(texts))
        if not isinstance(raw, list | tuple) or len(raw) != len(texts):
            raise ValueError(f"{self.name} returned {type(raw).__name__}, not one vector a text")
        vectors = [[float(x) for x in row] for row in raw]
        if any(len(v) != self.dimension for v in vectors):
            raise ValueError(f"{self.name} returned vectors not {self.dimension} long")
        return vectors


def _user_object(spec: str, base: Path) -> object:
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise StoreConfigError(f"{KEY}: expected './file.py:name', got {spec!r}")
    try:
        if target.endswith(".py") or "/" in target:
            module = load_module((base / target).resolve(), kind="embed", label=KEY)
        else:
            module = importlib.import_module(target)
    except (GraphLoadError, ImportError) as exc:
        raise StoreConfigError(f"{KEY}: {exc}") from exc
    found = getattr(module, name, None)
    if found is None:
        raise StoreConfigError(f"{KEY}: {target} has no {name!r}")
    if not isinstance(found, Embeddings) and not callable(found):
        raise StoreConfigError(f"{KEY}: {spec} is a {type(found).__name__}, not a function")
    return found


def open_store_embedder(index: StoreIndex, *, base: Path, settings: Settings) -> Embedder:
    """The embedder `store.index` names; `base` is the folder of the `langgraph.json`."""
    spec = index.embed
    if spec is None:
        return MiniLMEmbedder()
    provider, _, model = spec.partition(":")
    if provider == "openai" and model:
        if settings.openai_api_key is None and settings.openai_base_url is None:
            raise StoreConfigError(f"{KEY}: {spec!r} needs OPENAI_API_KEY or OPENAI_BASE_URL")
        key = settings.openai_api_key
        return OpenAIEmbedder(
            model,
            api_key=key.get_secret_value() if key is not None else "unused",
            base_url=settings.openai_base_url,
            dimension=index.dims,
        )
    target_part = spec.rpartition(":")[0]
    if target_part.endswith(".py") or "/" in target_part or "." in target_part:
        target: Callable[..., object] | object = _user_object(spec, base)
        return FunctionEmbedder(spec, target, index.dims)
    raise StoreConfigError(
        f"{KEY}: {spec!r} is not supported; use 'openai:<model>' or './file.py:name'"
    )
