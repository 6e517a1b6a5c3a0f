from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from tests.tools.conftest import LoopbackServer
from tools.embeddings import MiniLMEmbedder, OpenAIEmbedder, cosine_matrix, erf, minilm_model_dir


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


def test_erf_matches_math_erf() -> None:
    xs = np.linspace(-7.0, 7.0, 20001, dtype=np.float32)
    expected = np.array([math.erf(float(x)) for x in xs])
    assert np.abs(erf(xs.copy()) - expected).max() < 1e-6


def test_cosine_matrix_is_rows_by_columns_of_dot_products() -> None:
    similarity = cosine_matrix([[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    assert similarity.shape == (2, 3)
    assert similarity.dtype == np.float64
    np.testing.assert_allclose(similarity, [[0.0, 1.0, 0.6], [0.8, 0.6, 1.0]])
    assert cosine_matrix([], [[1.0, 0.0]]).shape == (0, 1)
    assert cosine_matrix([[1.0, 0.0]], []).shape == (1, 0)


def test_model_files_ship_with_the_package() -> None:
    model_dir = minilm_model_dir()
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "tokenizer.json").is_file()


async def test_vectors_are_384_dimensional_and_unit_length(minilm: MiniLMEmbedder) -> None:
    vectors = await minilm.embed(["A man is eating food.", "", "Ünïcödé and emoji 🚀"])
    assert len(vectors) == 3
    for vector in vectors:
        assert len(vector) == minilm.dimension == 384
        assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-5)


async def test_paraphrase_scores_above_unrelated(minilm: MiniLMEmbedder) -> None:
    food, bread, stocks = await minilm.embed(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market crashed today.",
        ]
    )
    paraphrase, unrelated = cosine(food, bread), cosine(food, stocks)
    assert paraphrase > 0.6
    assert unrelated < 0.2
    assert paraphrase - unrelated > 0.5


async def test_reproduces_the_published_similarity_matrix(minilm: MiniLMEmbedder) -> None:
    # sentence-transformers' quickstart prints this matrix for all-MiniLM-L6-v2;
    # matching it to 3 decimals checks tokenizer, encoder, pooling and normalisation.
    vectors = np.array(
        await minilm.embed(
            ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
        )
    )
    expected = np.array(
        [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]]
    )
    np.testing.assert_allclose(vectors @ vectors.T, expected, atol=1e-3)


async def test_padding_does_not_change_a_vector(minilm: MiniLMEmbedder) -> None:
    short = "Checkpoints make runs durable."
    long = "A much longer sentence " * 20
    alone = await minilm.embed([short])
    batched = await minilm.embed([long, short, "x"])
    np.testing.assert_allclose(alone[0], batched[1], atol=1e-5)


async def test_long_text_is_truncated_not_rejected(minilm: MiniLMEmbedder) -> None:
    assert minilm.max_tokens == 256
    long, head = await minilm.embed(["word " * 2000, "word " * 254])
    # Everything past the first 254 word pieces (plus [CLS] and [SEP]) is cut.
    np.testing.assert_allclose(long, head, atol=1e-5)


async def test_empty_input_and_concurrent_first_use() -> None:
    embedder = MiniLMEmbedder()
    assert await embedder.embed([]) == []
    # Several first calls at once must load the model exactly once and agree.
    results = await asyncio.gather(*(embedder.embed(["same text"]) for _ in range(4)))
    assert all(np.allclose(r[0], results[0][0]) for r in results)


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedder(batch_size=0)
    with pytest.raises(ValueError, match="max_tokens"):
        MiniLMEmbedder(max_tokens=1000)


async def test_openai_embedder_adapts_an_openai_compatible_endpoint(
    loopback: LoopbackServer,
) -> None:
    embedder = OpenAIEmbedder(
        "local-embedder",
        api_key="test-key",
        base_url=f"{loopback.base}/v1",
        dimension=loopback.embedding_dimension,
    )
    assert embedder.name == "openai:local-embedder"
    vectors = await embedder.embed(["first", "second"])
    assert len(vectors) == 2
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, abs_tol=1e-9) for v in vectors)
    assert loopback.embedding_requests[-1]["model"] == "local-embedder"
    assert loopback.embedding_requests[-1]["input"] == ["first", "second"]


def test_openai_embedder_needs_a_dimension_for_unknown_models() -> None:
    with pytest.raises(ValueError, match="dimension"):
        OpenAIEmbedder("mystery-model", api_key="k")
    assert OpenAIEmbedder("text-embedding-3-small", api_key="k").dimension == 1536
