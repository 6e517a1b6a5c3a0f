"""Test doubles for the assistant's agents: a fast embedder, a scripted provider, toolboxes.

Shared by ``tests/agents`` and ``tests/tools/models/test_offline_provider.py``.
Nothing here touches the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from tools.cache import MemoryCache
from tools.embeddings import Embedder
from tools.images import ImageLimits
from tools.models.offline_provider import OfflineProvider
from tools.models.provider import (
    Draft,
    ImageDescription,
    ImageLike,
    Judgement,
    Next,
    PassageLike,
    PromptUse,
    QueryRewrite,
    RouteDecision,
    RouteFacts,
)
from tools.models.text import cited_refs, content_words, split_sentences
from tools.net import PublicFetcher
from tools.retrieval import QdrantIndex, VectorIndex
from tools.toolbox import Toolbox

COLLECTION = "test-docs"


class HashEmbedder:
    """Bag-of-words vectors hashed into ``dimension`` buckets, L2-normalised.

    Cosine similarity then measures shared content words, which is what the
    unit tests need, at a fraction of MiniLM's cost.
    """

    name = "hash-bow"
    dimension = 256

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * self.dimension
            for word in content_words(text) or [text.strip().lower() or "empty"]:
                digest = hashlib.sha256(word.encode()).digest()
                vector[int.from_bytes(digest[:4], "big") % self.dimension] += 1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            vectors.append([v / norm for v in vector])
        return vectors


@dataclass
class ScriptedProvider:
    """A ``ModelProvider`` that returns scripted results and records its calls.

    Unscripted calls fall back to ``OfflineProvider`` behaviour on the same embedder.
    """

    embedder: Embedder
    routes: deque[Next] = field(default_factory=deque)
    drafts: deque[str] = field(default_factory=deque)
    judgements: deque[float] = field(default_factory=deque)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    name: str = "scripted"

    def __post_init__(self) -> None:
        self._offline = OfflineProvider(self.embedder)

    async def route(
        self, facts: RouteFacts, *, model: str | None = None, owner: str | None = None
    ) -> RouteDecision:
        self.calls.append(("route", {"facts": facts, "model": model}))
        if self.routes:
            return RouteDecision(
                self.routes.popleft(), "scripted", PromptUse("supervisor", 1), "scripted"
            )
        return await self._offline.route(facts)

    async def rewrite_query(
        self, question: str, *, model: str | None = None, owner: str | None = None
    ) -> QueryRewrite:
        self.calls.append(("rewrite_query", {"question": question, "model": model}))
        return await self._offline.rewrite_query(question)

    async def draft_answer(
        self,
        question: str,
        passages: Sequence[PassageLike],
        *,
        feedback: str | None = None,
        model: str | None = None,
        owner: str | None = None,
    ) -> Draft:
        self.calls.append(
            (
                "draft_answer",
                {"question": question, "passages": list(passages), "feedback": feedback},
            )
        )
        if self.drafts:
            text = self.drafts.popleft()
            return Draft(text, cited_refs(text, passages), PromptUse("retriever_answer", 1), "s")
        return await self._offline.draft_answer(question, passages)

    async def describe_image(
        self,
        question: str,
        image: ImageLike | None,
        ocr_text: str,
        facts: Mapping[str, Any],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> ImageDescription:
        self.calls.append(("describe_image", {"ocr_text": ocr_text, "facts": dict(facts)}))
        return await self._offline.describe_image(question, image, ocr_text, facts)

    async def judge(
        self,
        question: str,
        draft: str,
        passages: Sequence[PassageLike],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> Judgement:
        self.calls.append(("judge", {"question": question, "draft": draft, "model": model}))
        if self.judgements:
            return Judgement(
                self.judgements.popleft(), "scripted", PromptUse("critic_judge", 1), "s"
            )
        return await self._offline.judge(question, draft, passages)


DOCS = {
    "qdrant.md": (
        "Qdrant stores the document vectors. Trellis embeds every chunk with MiniLM "
        "before it is upserted into the collection. Searches return the nearest chunks "
        "by cosine similarity."
    ),
    "postgres.md": (
        "Postgres holds the checkpoints of every thread. The checkpointer writes one row "
        "per step and the runs table records each run's status."
    ),
    "redis.md": (
        "Redis carries the event streams of running runs. Clients that reconnect resume "
        "from their last event id."
    ),
}


async def index_docs(
    index: VectorIndex, embedder: Embedder, docs: Mapping[str, str] = DOCS
) -> None:
    """Store each document as two chunks of sentences."""
    await index.ensure_collection(COLLECTION, embedder.dimension)
    for source, text in docs.items():
        sentences = split_sentences(text)
        half = max(1, len(sentences) // 2)
        chunks = [" ".join(sentences[:half]), " ".join(sentences[half:])]
        chunks = [c for c in chunks if c]
        vectors = await embedder.embed(chunks)
        await index.upsert_document(COLLECTION, f"doc-{source}", source, chunks, vectors)


def make_toolbox(provider: Any, embedder: Embedder, index: VectorIndex | None = None) -> Toolbox:
    """A toolbox on an in-memory Qdrant and memory cache."""
    limits = ImageLimits()
    return Toolbox(
        provider=provider,
        embedder=embedder,
        index=index or QdrantIndex(location=":memory:"),
        collection=COLLECTION,
        fetcher=PublicFetcher(max_bytes=limits.max_bytes, timeout=5.0),
        image_limits=limits,
        cache=MemoryCache(),
    )


def text_png_data_url(text: str, *, size: tuple[int, int] = (900, 140)) -> str:
    """A PNG data URL of black ``text`` on white, large enough for tesseract."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    draw.text((24, 40), text, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
