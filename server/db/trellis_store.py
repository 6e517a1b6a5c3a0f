"""LangGraph's Postgres store as Trellis serves it: item TTLs honoured at once, and semantic
search without pgvector.

TTLs: LangGraph's `AsyncPostgresStore` filters expired-but-unswept rows from get, search and
list-namespaces only with `TTLConfig(omit_expired=True)`; Trellis always sets it, so an
expired item is invisible the moment it expires, and `server.db.store_sweeper` deletes it
later. LangGraph keeps `store.ttl_minutes` as an INT, which rounds a fractional ttl (0.05
minutes becomes 0, and a refresh then expires the item at once); `setup()` widens it to
double precision.

Semantic search (`store.index`): LangGraph's index needs the pgvector extension, which a
plain Postgres lacks. Trellis keeps vectors in its own table `store_trellis_vectors` (one row
per item and embedded field, packed float32, removed with the item by a cascading foreign key)
and ranks in Python: a search with a `query` reads the `SEMANTIC_CANDIDATES` most recently
updated items that match its namespace prefix and filter, scores each by the best cosine
similarity of its fields to the query, and returns them by score, items without vectors last
(score null).
Items beyond the candidate bound are not ranked: the bound keeps a search's memory and time
flat however large the store grows.
"""

from __future__ import annotations

import logging
import struct
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import orjson
from langgraph.store.base import Op, PutOp, Result, SearchItem, SearchOp, TTLConfig
from langgraph.store.base.embed import get_text_at_path, tokenize_path
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.postgres.base import _namespace_prefix_condition, _namespace_to_text
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from server.core.errors import EmbedderUnavailable
from server.core.store_config import StoreConfig
from server.db.pool import Pool

if TYPE_CHECKING:
    from tools.embeddings import Embedder

log = logging.getLogger("trellis.store")

SEMANTIC_CANDIDATES = 1000
"""Most items one semantic search ranks (the most recently updated that match)."""

SETUP_LOCK = 0x7472_6C73_7374_6F72  # "trlsstor"
"""Advisory lock serialising `setup()` across processes starting together."""

SETUP_SQL = (
    """
    DO $$
    BEGIN
        IF (SELECT data_type FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = 'store'
              AND column_name = 'ttl_minutes') = 'integer' THEN
            ALTER TABLE store ALTER COLUMN ttl_minutes TYPE double precision;
        END IF;
    END $$;
    """,
    """
    CREATE TABLE IF NOT EXISTS store_trellis_vectors (
        prefix text NOT NULL,
        key text NOT NULL,
        field_name text NOT NULL,
        embedding bytea NOT NULL,  -- float32, little-endian
        PRIMARY KEY (prefix, key, field_name),
        FOREIGN KEY (prefix, key) REFERENCES store (prefix, key) ON DELETE CASCADE
    )
    """,
)


async def apply_schema(conn: AsyncConnection[DictRow]) -> None:
    """Trellis' additions to LangGraph's store tables (after its `setup()`; idempotent, one
    process at a time)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
        for statement in SETUP_SQL:
            await conn.execute(statement)


def ttl_config(config: StoreConfig) -> TTLConfig:
    """LangGraph's TTL settings for `config` (expired items are always omitted)."""
    return TTLConfig(
        default_ttl=config.ttl.default_ttl,
        refresh_on_read=config.ttl.refresh_on_read,
        sweep_interval_minutes=int(config.ttl.sweep_interval_minutes),
        omit_expired=True,
    )


def _filter_sql(
    filter: Mapping[str, object] | None, store: AsyncPostgresStore
) -> tuple[str, list[object]]:
    # The same conditions LangGraph's own search builds (`_prepare_batch_search_queries`).
    clauses: list[str] = []
    params: list[object] = []
    for key, value in (filter or {}).items():
        if isinstance(value, dict):
            for op_name, val in value.items():
                condition, more = store._get_filter_condition(key, op_name, val)
                clauses.append(condition)
                params.extend(more)
        else:
            clauses.append("value->%s = %s::jsonb")
            params.extend([key, orjson.dumps(value).decode()])
    return "".join(f" AND {c}" for c in clauses), params


class TrellisStore(AsyncPostgresStore):
    """`AsyncPostgresStore` with TTLs applied at read time and a pgvector-free semantic index."""

    def __init__(
        self,
        pool: Pool,
        config: StoreConfig,
        embedder: Embedder | None = None,
    ) -> None:
        super().__init__(pool, ttl=ttl_config(config))
        self._pool = pool
        self._embedder = embedder
        self._fields = config.index.fields if config.index is not None else ("$",)
        self.sweep_interval_seconds = config.ttl.sweep_interval_minutes * 60

    async def setup(self) -> None:
        """LangGraph's migrations, then Trellis' own (idempotent, one process at a time)."""
        await super().setup()
        async with self._pool.connection() as conn:
            await apply_schema(conn)

    async def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        assert self._embedder is not None
        try:
            return await self._embedder.embed(list(texts))
        except Exception as exc:
            name = getattr(self._embedder, "name", type(self._embedder).__name__)
            log.warning("store embedder %s failed: %r", name, exc)
            raise EmbedderUnavailable(
                f"the store's embedder ({name}) failed: {type(exc).__name__}"
            ) from exc

    def _texts(self, op: PutOp) -> list[tuple[str, str]]:
        if op.index is False or op.value is None:
            return []
        paths = self._fields if op.index is None else tuple(op.index)
        found: list[tuple[str, str]] = []
        for path in paths:
            texts = get_text_at_path(op.value, tokenize_path(path) if path != "$" else path)
            for i, text in enumerate(texts):
                found.append((f"{path}.{i}" if len(texts) > 1 else path, text))
        return found

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run `ops`; puts are embedded first (a failing embedder writes nothing), searches
        with a query are ranked by similarity when an index is configured."""
        ops = list(ops)
        if self._embedder is None:
            return await super().abatch(ops)
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                puts[(op.namespace, op.key)] = op
        fields = {target: self._texts(op) for target, op in puts.items()}
        texts = [text for pairs in fields.values() for _, text in pairs]
        vectors = iter(await self._embed(texts)) if texts else iter(())
        semantic = {i: op for i, op in enumerate(ops) if isinstance(op, SearchOp) and op.query}
        others = [op for i, op in enumerate(ops) if i not in semantic]
        answered = iter(await super().abatch(others)) if others else iter(())
        if puts:
            await self._write_vectors(
                [
                    (target, [(name, next(vectors)) for name, _ in pairs])
                    for target, pairs in fields.items()
                    if puts[target].value is not None
                ]
            )
        results: list[Result] = []
        for i in range(len(ops)):
            results.append(await self._rank(semantic[i]) if i in semantic else next(answered))
        return results

    async def _write_vectors(
        self, items: list[tuple[tuple[tuple[str, ...], str], list[tuple[str, list[float]]]]]
    ) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            for (namespace, key), named in items:
                prefix = _namespace_to_text(namespace)
                await conn.execute(
                    "DELETE FROM store_trellis_vectors WHERE prefix = %s AND key = %s",
                    (prefix, key),
                )
                for name, vector in named:
                    # The item may have been deleted meanwhile: insert only if it exists.
                    await conn.execute(
                        """
                        INSERT INTO store_trellis_vectors (prefix, key, field_name, embedding)
                        SELECT prefix, key, %s, %s FROM store WHERE prefix = %s AND key = %s
                        ON CONFLICT (prefix, key, field_name)
                        DO UPDATE SET embedding = EXCLUDED.embedding
                        """,
                        (name, struct.pack(f"<{len(vector)}f", *vector), prefix, key),
                    )

    async def _rank(self, op: SearchOp) -> list[SearchItem]:
        assert op.query is not None
        import numpy as np  # here: only a ranked search needs it

        (query_vector,) = await self._embed([op.query])
        ns_sql, ns_params = ("TRUE", ())
        if op.namespace_prefix:
            ns_sql, ns_params = _namespace_prefix_condition(op.namespace_prefix)
        filter_sql, filter_params = _filter_sql(op.filter, self)
        sql = f"""
            SELECT store.prefix, store.key, store.value, store.created_at, store.updated_at,
                   (SELECT array_agg(v.embedding) FROM store_trellis_vectors v
                    WHERE v.prefix = store.prefix AND v.key = store.key) AS embeddings
            FROM store
            WHERE {ns_sql} {filter_sql}
              AND (store.expires_at IS NULL OR store.expires_at > NOW())
            ORDER BY store.updated_at DESC
            LIMIT %s
        """
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, (*ns_params, *filter_params, SEMANTIC_CANDIDATES))
            rows = await cursor.fetchall()
        query = np.asarray(query_vector, dtype=np.float64)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        # One matrix product over every vector of every candidate; a vector of another length
        # (embedded by another model before a config change) is left out.
        width = 4 * len(query)
        owners: list[int] = []
        blobs: list[bytes] = []
        for i, row in enumerate(rows):
            for blob in row["embeddings"] or ():
                if len(blob) == width:
                    owners.append(i)
                    blobs.append(bytes(blob))
        best = np.full(len(rows), -np.inf)
        if blobs:
            matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
            vectors = matrix.astype(np.float64)
            norms = np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)
            np.maximum.at(best, np.asarray(owners), (vectors @ query) / norms)
        scored: list[tuple[float | None, DictRow]] = [
            (float(best[i]) if np.isfinite(best[i]) else None, row) for i, row in enumerate(rows)
        ]
        # Python's sort is stable: rows keep their most-recent-first order among equals.
        scored.sort(key=lambda pair: (pair[0] is None, -(pair[0] or 0.0)))
        page = scored[op.offset : op.offset + op.limit]
        if op.refresh_ttl and page:
            await self._refresh([(row["prefix"], row["key"]) for _, row in page])
        return [
            SearchItem(
                namespace=tuple(row["prefix"].split(".")),
                key=row["key"],
                value=row["value"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                score=score,
            )
            for score, row in page
        ]

    async def _refresh(self, items: list[tuple[str, str]]) -> None:
        by_prefix: dict[str, list[str]] = defaultdict(list)
        for prefix, key in items:
            by_prefix[prefix].append(key)
        async with self._pool.connection() as conn:
            for prefix, keys in by_prefix.items():
                await conn.execute(
                    """
                    UPDATE store SET expires_at = NOW() + ttl_minutes * INTERVAL '1 minute'
                    WHERE prefix = %s AND key = ANY(%s) AND ttl_minutes IS NOT NULL
                      AND (expires_at IS NULL OR expires_at > NOW())
                    """,
                    (prefix, keys),
                )
