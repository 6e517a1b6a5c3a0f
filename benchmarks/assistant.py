"""Built-in assistant benchmarks: embedding rate, vector query latency, one question end to end.

Prints figures; asserts nothing about time. Everything runs locally (embedded Qdrant in a
temporary directory, the offline provider, MiniLM on numpy).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
import uuid

from langgraph.checkpoint.memory import InMemorySaver

from graphs.assistant import build
from tools.cache import MemoryCache
from tools.embeddings import MiniLMEmbedder
from tools.images import ImageLimits
from tools.models.offline_provider import OfflineProvider
from tools.net import PublicFetcher
from tools.retrieval import QdrantIndex, ingest_paths, sample_corpus_dir
from tools.toolbox import Toolbox, install_toolbox

WORDS = [
    *("checkpoint", "thread", "run", "lease", "worker", "stream", "durable", "postgres"),
    *("redis", "graph", "node", "agent", "critic", "confidence", "retrieval", "vision"),
    *("approval", "interrupt", "resume", "supervisor", "queue", "event", "replay"),
]


def sentences(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))) + "." for _ in range(n)]


async def embedding_throughput(embedder: MiniLMEmbedder) -> float:
    await embedder.embed(sentences(8))  # load the weights
    texts = sentences(512, seed=1)
    started = time.perf_counter()
    await embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started)


async def query_latency(embedder: MiniLMEmbedder, points: int) -> tuple[float, float]:
    index = QdrantIndex(location=":memory:")
    await index.ensure_collection("bench", embedder.dimension)
    rng = random.Random(3)
    batch = 500
    for start in range(0, points, batch):
        vectors = [[rng.gauss(0, 1) for _ in range(embedder.dimension)] for _ in range(batch)]
        await index.upsert_document(
            "bench",
            f"doc-{start}",
            f"doc-{start}.md",
            [f"chunk {i}" for i in range(batch)],
            vectors,
        )
    queries = await embedder.embed(sentences(50, seed=9))
    samples = []
    for vector in queries:
        started = time.perf_counter()
        await index.search("bench", vector, top_k=4)
        samples.append(time.perf_counter() - started)
    await index.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


async def question_latency(embedder: MiniLMEmbedder, runs: int = 10) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as data:
        index = QdrantIndex(path=data)
        limits = ImageLimits()
        install_toolbox(
            Toolbox(
                provider=OfflineProvider(embedder),
                embedder=embedder,
                index=index,
                collection="documents",
                fetcher=PublicFetcher(max_bytes=limits.max_bytes, timeout=5),
                image_limits=limits,
                cache=MemoryCache(),
            )
        )
        await ingest_paths(
            [sample_corpus_dir()], index=index, embedder=embedder, collection="documents"
        )
        graph = build().compile(checkpointer=InMemorySaver())
        questions = [
            "How does Trellis survive a crash?",
            "What is a confidence score?",
            "How do approvals work?",
            "How do I run Trellis with Docker compose?",
        ]
        samples = []
        for i in range(runs):
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            message = {"role": "user", "content": questions[i % len(questions)]}
            started = time.perf_counter()
            await graph.ainvoke({"messages": [message]}, config)
            samples.append(time.perf_counter() - started)
        await index.close()
    return statistics.median(samples), max(samples)


async def main() -> None:
    embedder = MiniLMEmbedder()
    rate = await embedding_throughput(embedder)
    print(f"MiniLM-L6 (numpy, no torch) embedding throughput: {rate:7.1f} texts/s (512 sentences)")
    for points in (2_000, 10_000):
        median, p95 = await query_latency(embedder, points)
        print(
            f"Qdrant local query, {points:>6} chunks, top 4: median {median * 1000:6.2f} ms"
            f"  p95 {p95 * 1000:6.2f} ms"
        )
    median, worst = await question_latency(embedder)
    print(
        f"one question end to end (offline provider, in-process): median {median * 1000:7.1f} ms"
        f"  max {worst * 1000:7.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
