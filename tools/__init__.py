"""The infrastructure the built-in assistant's nodes use; nothing here imports ``server``.

toolbox.py     Toolbox: what nodes may touch, installed once per process (current_toolbox)
models/        ModelProvider and its offline and OpenAI implementations
embeddings.py  Embedder: MiniLM on numpy, OpenAI embeddings; cosine_matrix
retrieval.py   VectorIndex on Qdrant, chunking and ingestion, the sample corpus
images.py      image intake: limits, preprocessing, OCR, facts
net.py         the outbound request guard for URLs someone else chose
cache.py       byte caches with a TTL, cache keys, the caching embedder
telemetry.py   the hooks tools call for metrics (retries, fallbacks, retrievals, cache hits)
"""
