"""Document retrieval: chunking, ingestion and the vector index behind it.

Agents depend on the `VectorIndex` protocol; `QdrantIndex` implements it on
Qdrant, embedded (a local directory or memory) or as a server. The composition
root picks which. `chunk_text` and `ingest_paths` turn text and Markdown files
into indexed passages; `sample_corpus_dir` points at the small corpus about
Trellis that ships with the package.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from qdrant_client import AsyncQdrantClient, models

from tools import telemetry
from tools.embeddings import Embedder

__all__ = [
    "INGESTIBLE_SUFFIXES",
    "CollectionRefused",
    "CollectionScope",
    "IndexLocked",
    "IngestReport",
    "Passage",
    "QdrantIndex",
    "VectorIndex",
    "check_collection_name",
    "chunk_text",
    "collect_files",
    "document_id_for",
    "duplicate_sources",
    "embedded_index_holder",
    "ingest_paths",
    "ingest_root",
    "owner_collection",
    "resolve_collection",
    "sample_corpus_dir",
]

INGESTIBLE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
"""File suffixes `ingest_paths` reads; anything else is skipped."""

KEYWORD_FIELDS = ("document_id", "source", "owner")
"""Payload fields indexed for filtering on a Qdrant server."""

# Point ids must be UUIDs or integers; uuid5 makes them a function of
# (document, chunk), which is what makes re-ingestion overwrite in place.
_POINT_NAMESPACE = uuid.UUID("6f1f5a52-3a0e-4c57-9a43-5d8f5b0d7a11")


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk of a document."""

    document_id: str
    chunk: int
    text: str
    score: float
    source: str


class VectorIndex(Protocol):
    """Stores chunk vectors per collection and finds the nearest ones."""

    async def ensure_collection(self, collection: str, dimension: int) -> None:
        """Create `collection` for cosine vectors of `dimension` if it does not exist."""
        ...

    async def upsert_document(
        self,
        collection: str,
        document_id: str,
        source: str,
        chunks: Sequence[str],
        vectors: Sequence[Sequence[float]],
        *,
        owner: str | None = None,
    ) -> int:
        """Replace the chunks of `document_id` with `chunks`; return how many were stored."""
        ...

    async def search(
        self,
        collection: str,
        vector: Sequence[float],
        *,
        top_k: int,
        score_threshold: float | None = None,
        filters: Mapping[str, str] | None = None,
        owner: str | None = None,
        shared: bool = True,
    ) -> list[Passage]:
        """Return up to `top_k` passages nearest to `vector`, best first: from `owner`'s own
        part of `collection`, and from the shared `collection` itself unless `shared=False`."""
        ...

    async def count(self, collection: str, *, owner: str | None = None) -> int:
        """Number of chunks stored in `collection` (shared, or `owner`'s own)."""
        ...

    async def close(self) -> None:
        """Release the underlying client."""
        ...


class IndexLocked(RuntimeError):
    """An embedded Qdrant directory is open in another process: local mode allows one.

    Raised by `QdrantIndex(path=...)`; the message names the process holding it."""

    def __init__(self, path: Path, holder: int | None) -> None:
        self.path = path
        self.holder = holder
        """The pid holding the directory's lock, when the system says (Linux)."""
        super().__init__(
            f"the embedded Qdrant in {path} is open in {_describe_process(holder)}, and only "
            "one process at a time can open it: stop that process, or use a Qdrant server "
            "(QDRANT_URL)"
        )


def embedded_index_holder(path: str | Path) -> tuple[bool, int | None]:
    """Whether another process holds the embedded Qdrant in `path`, and its pid if known.

    Qdrant's local mode takes an exclusive `flock` on `<path>/.lock` for as long as its
    client is open; this tries (and at once releases) the same lock."""
    lock = Path(path) / ".lock"
    try:
        with open(lock, "rb") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True, _flock_owner(lock)
            fcntl.flock(file, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return False, None


def _flock_owner(lock: Path) -> int | None:
    """The pid `/proc/locks` names for the flock on `lock` (None off Linux or when gone)."""
    try:
        stat = lock.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2288070 0 EOF" (device in hex, inode decimal)
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[4] == "-1":
            continue
        major, minor, inode = fields[5].split(":")
        if (int(inode), int(major, 16), int(minor, 16)) == (
            stat.st_ino,
            os.major(stat.st_dev),
            os.minor(stat.st_dev),
        ):
            return int(fields[4])
    return None


def _describe_process(pid: int | None) -> str:
    """`pid 4242 (python -m server.cli serve)`, or `another process` when unknown."""
    if pid is None:
        return "another process"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return f"pid {pid}"
    command = " ".join(a.decode(errors="replace") for a in argv)
    command = command if len(command) <= 80 else command[:77] + "..."
    return f"pid {pid} ({command})" if command else f"pid {pid}"


class QdrantIndex:
    """`VectorIndex` on Qdrant: `path=` (embedded, on disk), `url=` (server) or `location=`."""

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        timeout: int = 10,
    ) -> None:
        given = [name for name, v in (("path", path), ("url", url), ("location", location)) if v]
        if len(given) != 1:
            raise ValueError("pass exactly one of path=, url= or location=")
        if api_key is not None and url is None:
            raise ValueError("api_key= only applies to a Qdrant server (url=)")
        # Embedded Qdrant ignores payload indexes and warns when asked for one.
        self._embedded = url is None and not str(location or "").startswith(("http:", "https:"))
        if path is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
            try:
                self._client = AsyncQdrantClient(path=str(path))
            except RuntimeError:
                held, holder = embedded_index_holder(path)
                if not held:
                    raise
                raise IndexLocked(Path(path), holder) from None
        elif url is not None:
            self._client = AsyncQdrantClient(url=url, api_key=api_key, timeout=timeout)
        else:
            self._client = AsyncQdrantClient(location=location)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def ensure_collection(self, collection: str, dimension: int) -> None:
        """Create `collection` (cosine, keyword payload indexes) unless it exists."""
        if not await self._client.collection_exists(collection):
            try:
                await self._client.create_collection(
                    collection,
                    vectors_config=models.VectorParams(
                        size=dimension, distance=models.Distance.COSINE
                    ),
                )
            except Exception:
                # Another process may have created it between the check and here.
                if not await self._client.collection_exists(collection):
                    raise
        info = await self._client.get_collection(collection)
        params = info.config.params.vectors
        size = params.size if isinstance(params, models.VectorParams) else None
        if size != dimension:
            raise ValueError(
                f"collection {collection!r} holds vectors of size {size}, not {dimension}; "
                "use a collection per embedding model"
            )
        if not self._embedded:
            for field in KEYWORD_FIELDS:
                await self._client.create_payload_index(
                    collection, field, field_schema=models.PayloadSchemaType.KEYWORD, wait=True
                )

    async def upsert_document(
        self,
        collection: str,
        document_id: str,
        source: str,
        chunks: Sequence[str],
        vectors: Sequence[Sequence[float]],
        *,
        owner: str | None = None,
    ) -> int:
        """Replace the chunks of `document_id`; idempotent for the same input.

        An owner's documents live in a collection of their own next to the shared one
        (see `owner_collection`), so searches never need a payload filter for ownership.
        """
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if owner is not None:
            collection = owner_collection(collection, owner)
            if vectors:
                await self.ensure_collection(collection, len(vectors[0]))
            elif not await self._client.collection_exists(collection):
                return 0
        points = []
        for i, (text, vector) in enumerate(zip(chunks, vectors, strict=True)):
            payload: dict[str, str | int] = {
                "document_id": document_id,
                "chunk": i,
                "text": text,
                "source": source,
            }
            if owner is not None:
                payload["owner"] = owner
            points.append(
                models.PointStruct(
                    id=str(uuid.uuid5(_POINT_NAMESPACE, f"{document_id}\x00{i}")),
                    vector=[float(x) for x in vector],
                    payload=payload,
                )
            )
        if points:
            await self._client.upsert(collection, points=points, wait=True)
        # Overwrite first, then drop chunks past the new end: the document never
        # disappears from search while it is being replaced.
        stale = models.Filter(
            must=[
                _match("document_id", document_id),
                models.FieldCondition(key="chunk", range=models.Range(gte=len(points))),
            ]
        )
        await self._client.delete(
            collection, points_selector=models.FilterSelector(filter=stale), wait=True
        )
        return len(points)

    async def search(
        self,
        collection: str,
        vector: Sequence[float],
        *,
        top_k: int,
        score_threshold: float | None = None,
        filters: Mapping[str, str] | None = None,
        owner: str | None = None,
        shared: bool = True,
    ) -> list[Passage]:
        """Nearest passages to `vector` matching every `filters` item.

        With `owner`, that owner's documents are searched too, next to the shared ones
        (ingested without an owner, like the sample corpus); without, only shared ones.
        `shared=False` leaves the shared collection out: only `owner`'s own part is searched
        (see `resolve_collection` for which names are shared).
        """
        started = time.perf_counter()
        query_filter = (
            models.Filter(must=[_match(k, v) for k, v in filters.items()]) if filters else None
        )
        targets = (
            [collection] if shared and await self._client.collection_exists(collection) else []
        )
        if owner is not None:
            own = owner_collection(collection, owner)
            if await self._client.collection_exists(own):
                targets.append(own)
        found: list[Passage] = []
        for target in targets:
            found += await self._query(target, vector, top_k, score_threshold, query_filter)
        passages = sorted(found, key=lambda p: p.score, reverse=True)[:top_k]
        telemetry.current().retrieved(collection, time.perf_counter() - started, len(passages))
        return passages

    async def _query(
        self,
        collection: str,
        vector: Sequence[float],
        top_k: int,
        score_threshold: float | None,
        query_filter: models.Filter | None,
    ) -> list[Passage]:
        response = await self._client.query_points(
            collection,
            query=[float(x) for x in vector],
            limit=top_k,
            score_threshold=score_threshold,
            query_filter=query_filter,
            with_payload=True,
        )
        passages = []
        for point in response.points:
            payload = point.payload or {}
            passages.append(
                Passage(
                    document_id=str(payload.get("document_id", "")),
                    chunk=int(payload.get("chunk", 0)),
                    text=str(payload.get("text", "")),
                    score=float(point.score),
                    source=str(payload.get("source", "")),
                )
            )
        return passages

    async def count(self, collection: str, *, owner: str | None = None) -> int:
        """Exact number of chunks in `collection` (the shared part, or `owner`'s own)."""
        if owner is not None:
            collection = owner_collection(collection, owner)
            if not await self._client.collection_exists(collection):
                return 0
        result = await self._client.count(collection, exact=True)
        return int(result.count)

    async def close(self) -> None:
        """Close the Qdrant client (and release an embedded store's lock)."""
        await self._client.close()


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


# --- chunking ---------------------------------------------------------------

_HEADING = re.compile(r"^#{1,6}\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def chunk_text(text: str, *, max_chars: int = 800, overlap: int = 120) -> list[str]:
    """Split text or Markdown into chunks of at most `max_chars`, breaking between words."""
    if max_chars < 20:
        raise ValueError("max_chars must be at least 20")
    if not 0 <= overlap < max_chars // 2:
        raise ValueError("overlap must be non-negative and under half of max_chars")
    chunks: list[str] = []
    for section in _sections(text):
        current = ""
        for sep, piece in _pieces(section, max_chars):
            if not current:
                current = piece
            elif len(current) + len(sep) + len(piece) <= max_chars:
                current += sep + piece
            else:
                chunks.append(current)
                tail = _tail(current, min(overlap, max_chars - len(piece) - 1))
                current = f"{tail} {piece}" if tail else piece
        if current:
            chunks.append(current)
    return chunks


def _sections(text: str) -> list[list[str]]:
    """Paragraphs grouped into sections, each Markdown heading starting a new one."""
    sections: list[list[str]] = [[]]
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            sections[-1].append("\n".join(paragraph))
            paragraph.clear()

    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if _HEADING.match(line):
            end_paragraph()
            sections.append([line])
        elif not line.strip():
            end_paragraph()
        else:
            paragraph.append(line)
    end_paragraph()
    return [s for s in sections if s]


def _pieces(section: list[str], max_chars: int) -> Iterable[tuple[str, str]]:
    """(separator, text) units no longer than `max_chars`, in order."""
    for p, paragraph in enumerate(section):
        sep = "\n\n" if p else ""
        if len(paragraph) <= max_chars:
            yield sep, paragraph
            continue
        for s, sentence in enumerate(_SENTENCE_END.split(paragraph)):
            for w, part in enumerate(_split_words(sentence, max_chars)):
                yield (sep if s == 0 and w == 0 else " "), part


def _split_words(sentence: str, max_chars: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for word in sentence.split():
        # A single "word" longer than a chunk (a URL, a base64 blob) has to be cut.
        while len(word) > max_chars:
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:max_chars])
            word = word[max_chars:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= max_chars:
            current += " " + word
        else:
            parts.append(current)
            current = word
    if current:
        parts.append(current)
    return parts


def _tail(text: str, budget: int) -> str:
    """The last whole words of `text` fitting in `budget` characters."""
    if budget <= 0:
        return ""
    words = text.split()
    kept: list[str] = []
    size = 0
    for word in reversed(words):
        size += len(word) + (1 if kept else 0)
        if size > budget:
            break
        kept.append(word)
    return " ".join(reversed(kept))


# --- ingestion ----------------------------------------------------------------


@dataclass(frozen=True)
class IngestReport:
    """What `ingest_paths` did."""

    files: int
    """Files read and indexed."""
    chunks: int
    """Chunks written across those files."""
    skipped: tuple[str, ...] = ()
    """Files not indexed (empty, or not UTF-8 text), as their source names."""
    duplicates: tuple[tuple[str, str], ...] = ()
    """`(source, same_as)`: a document whose text is exactly that of an earlier one (both
    are indexed; each path stays its own document)."""


OWNER_MARK = "__owner_"
"""What separates a collection's name from the owner digest of an owner's own part of it."""

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class CollectionRefused(ValueError):
    """Raised when a caller names a collection it may not use (a malformed or reserved name,
    or an unshared one for a caller without an owner); the message says which and why."""


@dataclass(frozen=True)
class CollectionScope:
    """Where a caller-chosen collection name leads: always the caller's own part of it, and
    the collection itself only when the operator shares it."""

    name: str
    """The collection name (the base of the caller's own part, `owner_collection`)."""
    shared: bool
    """Whether the collection itself is operator-shared and read besides the caller's part."""


def check_collection_name(name: str) -> str:
    """`name` when it may name a collection: 1-64 of letters, digits, `_` and `-`, starting
    with a letter or digit, and without the reserved owner mark."""
    if not _COLLECTION_NAME.match(name):
        raise CollectionRefused(
            f"collection name {name[:80]!r} is not valid: use 1-64 letters, digits, '_' or "
            "'-', starting with a letter or digit"
        )
    if OWNER_MARK in name.lower():  # in any case, though names are case-sensitive
        raise CollectionRefused(
            f"collection name {name[:80]!r} contains {OWNER_MARK!r}, which is reserved for "
            "owners' own collections"
        )
    return name


def resolve_collection(
    requested: str | None, *, default: str, shared: Iterable[str], owner: str | None
) -> CollectionScope:
    """The collections a run or an ingest by `owner` may reach with the name `requested`.

    A name is read as the shared collection of that name only when it is `default` or in
    `shared` (the operator's allow-list); any other name stays inside the caller's own part
    (`owner_collection(name, owner)`), so no caller-chosen name reaches another owner's
    documents or a collection the operator did not share. Without an owner there is no own
    part, so an unshared name is refused."""
    name = check_collection_name(requested if requested is not None else default)
    if name == default or name in set(shared):
        return CollectionScope(name=name, shared=True)
    if owner is None:
        raise CollectionRefused(
            f"collection {name!r} is not shared (SHARED_COLLECTIONS) and there is no owner "
            "to keep it for"
        )
    return CollectionScope(name=name, shared=False)


def owner_collection(collection: str, owner: str) -> str:
    """The collection holding `owner`'s documents next to the shared `collection`."""
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:20]
    return f"{collection}{OWNER_MARK}{digest}"


def document_id_for(source: str) -> str:
    """Stable document id for a source name (a relative path or a file name)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:32]


def collect_files(
    paths: Iterable[str | Path], *, root: str | Path | None = None
) -> list[tuple[Path, str]]:
    """The .md/.txt files under `paths`, each with its source name: its path relative to
    `root`, so two files never share one (`a/README.md`, `b/README.md`).

    `root` defaults to the deepest directory holding every given path (a directory given
    alone is its own root); a file outside `root` is named by its absolute path."""
    given: list[Path] = []
    for path in paths:
        resolved = Path(path).resolve()
        if not resolved.exists():
            raise FileNotFoundError(f"no such file or directory: {path}")
        given.append(resolved)
    base = Path(root).resolve() if root is not None else ingest_root(given)
    found: dict[Path, str] = {}
    for path in given:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and (file == path or file.suffix.lower() in INGESTIBLE_SUFFIXES):
                name = file.relative_to(base) if file.is_relative_to(base) else file
                found.setdefault(file, name.as_posix())
    return list(found.items())


def ingest_root(paths: Sequence[Path]) -> Path:
    """The deepest directory holding every path (a directory counts as itself, a file as
    the directory it is in)."""
    dirs = [path if path.is_dir() else path.parent for path in paths]
    if not dirs:
        return Path.cwd()
    return Path(os.path.commonpath(dirs))


def duplicate_sources(documents: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """`(source, same_as)` for each non-empty document whose text an earlier one has."""
    first: dict[str, str] = {}
    duplicates = []
    for source, text in documents:
        if not text.strip():
            continue
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest in first:
            duplicates.append((source, first[digest]))
        else:
            first[digest] = source
    return duplicates


async def ingest_documents(
    documents: Iterable[tuple[str, str]],
    *,
    index: VectorIndex,
    embedder: Embedder,
    collection: str,
    progress: Callable[[int, int], None] | None = None,
    owner: str | None = None,
    max_chars: int = 800,
    overlap: int = 120,
) -> IngestReport:
    """Chunk, embed and index `(source, text)` pairs; re-ingesting a source replaces its chunks.

    A document belongs to `owner` (None: shared with everyone); two owners' documents
    with the same source name are separate documents. Only an ingest without an owner
    creates (or writes to) `collection` itself; callers choose which names may be shared
    (`resolve_collection`).
    """
    items = list(documents)
    if owner is None:
        await index.ensure_collection(collection, embedder.dimension)
    indexed = chunk_total = 0
    skipped: list[str] = []
    for done, (source, text) in enumerate(items, start=1):
        chunks = chunk_text(text, max_chars=max_chars, overlap=overlap)
        vectors = await embedder.embed(chunks) if chunks else []
        document_id = document_id_for(source)
        # Upserting nothing still clears what an earlier, non-empty version left.
        stored = await index.upsert_document(
            collection, document_id, source, chunks, vectors, owner=owner
        )
        if stored:
            chunk_total += stored
            indexed += 1
        else:
            skipped.append(source)
        if progress is not None:
            progress(done, len(items))
    return IngestReport(
        files=indexed,
        chunks=chunk_total,
        skipped=tuple(skipped),
        duplicates=tuple(duplicate_sources(items)),
    )


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


async def ingest_paths(
    paths: Iterable[str | Path],
    *,
    index: VectorIndex,
    embedder: Embedder,
    collection: str,
    progress: Callable[[int, int], None] | None = None,
    owner: str | None = None,
    max_chars: int = 800,
    overlap: int = 120,
    root: str | Path | None = None,
) -> IngestReport:
    """Chunk, embed and index .md/.txt files (directories recursively); re-runs replace.

    Each file is a document named by its path relative to `root` (see `collect_files`)."""
    files = await asyncio.to_thread(collect_files, paths, root=root)
    texts = [(source, await asyncio.to_thread(_read_text, file)) for file, source in files]
    return await ingest_documents(
        texts,
        index=index,
        embedder=embedder,
        collection=collection,
        progress=progress,
        owner=owner,
        max_chars=max_chars,
        overlap=overlap,
    )


def sample_corpus_dir() -> Path:
    """Directory of the Markdown corpus about Trellis shipped in `tools/corpus/`."""
    return Path(__file__).resolve().parent / "corpus"
