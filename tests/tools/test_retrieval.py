from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agents.support import HashEmbedder
from tools.cache import CachedEmbedder, MemoryCache
from tools.embeddings import MiniLMEmbedder
from tools.retrieval import (
    CollectionRefused,
    CollectionScope,
    QdrantIndex,
    chunk_text,
    collect_files,
    document_id_for,
    duplicate_sources,
    ingest_documents,
    ingest_paths,
    owner_collection,
    resolve_collection,
    sample_corpus_dir,
)

MARKDOWN = (
    """# Durability

Checkpoints are written after every step. A crashed worker loses at most the step in flight.
Leases expire and another worker takes over the run from its last checkpoint.

## Fencing

"""
    + " ".join(
        f"Sentence {i} explains how epochs fence stale workers out of checkpoint writes."
        for i in range(40)
    )
    + """

# Approvals

Exactly one decision wins.
"""
)


def words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize(("max_chars", "overlap"), [(800, 120), (200, 40), (60, 0)])
def test_chunks_respect_the_size_and_never_split_words(max_chars: int, overlap: int) -> None:
    chunks = chunk_text(MARKDOWN, max_chars=max_chars, overlap=overlap)
    vocabulary = set(words(MARKDOWN))
    assert chunks
    for chunk in chunks:
        assert 0 < len(chunk) <= max_chars
        assert set(words(chunk)) <= vocabulary, "a chunk contains a cut word"
    # Nothing is lost: every word of the text appears in some chunk.
    assert vocabulary == set().union(*(set(words(c)) for c in chunks))


def test_headings_start_chunks_and_long_sections_overlap() -> None:
    chunks = chunk_text(MARKDOWN, max_chars=300, overlap=80)
    assert chunks[0].startswith("# Durability")
    assert any(c.startswith("## Fencing") for c in chunks)
    assert chunks[-1] == "# Approvals\n\nExactly one decision wins."
    fencing = [c for c in chunks if "epochs fence" in c]
    assert len(fencing) > 2
    for previous, current in itertools.pairwise(fencing):
        # The next chunk repeats the tail of the previous one.
        assert current.split()[0] in previous.split()[-15:]


def test_short_text_is_one_chunk_and_blank_text_none() -> None:
    assert chunk_text("Hello there.") == ["Hello there."]
    assert chunk_text("  \n\n  ") == []


def test_a_word_longer_than_a_chunk_is_cut_as_a_last_resort() -> None:
    url = "https://example.com/" + "a" * 150
    chunks = chunk_text(f"See {url} now.", max_chars=60, overlap=0)
    assert all(len(c) <= 60 for c in chunks)
    assert "".join(chunks).replace(" ", "").startswith("See" + url[:20])


def test_chunk_text_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", max_chars=100, overlap=60)
    with pytest.raises(ValueError, match="max_chars"):
        chunk_text("x", max_chars=5)


@pytest.fixture
async def index() -> AsyncIterator[QdrantIndex]:
    async with QdrantIndex(location=":memory:") as idx:
        yield idx


def unit(i: int, dimension: int = 4) -> list[float]:
    vector = [0.0] * dimension
    vector[i % dimension] = 1.0
    return vector


async def test_upsert_search_and_filters(index: QdrantIndex) -> None:
    await index.ensure_collection("docs", 4)
    await index.ensure_collection("docs", 4)  # idempotent
    stored = await index.upsert_document(
        "docs", "d1", "a.md", ["alpha", "beta"], [unit(0), unit(1)]
    )
    assert stored == 2
    await index.upsert_document("docs", "d2", "b.md", ["gamma"], [unit(0)])
    assert await index.count("docs") == 3

    hits = await index.search("docs", unit(0), top_k=5)
    assert {(h.document_id, h.text) for h in hits[:2]} == {("d1", "alpha"), ("d2", "gamma")}
    assert hits[0].score == pytest.approx(1.0)

    only_b = await index.search("docs", unit(0), top_k=5, filters={"source": "b.md"})
    assert [(p.document_id, p.chunk, p.text, p.source) for p in only_b] == [
        ("d2", 0, "gamma", "b.md")
    ]
    strong = await index.search("docs", unit(1), top_k=5, score_threshold=0.5)
    assert [p.text for p in strong] == ["beta"]


async def test_owners_see_shared_documents_and_only_their_own(index: QdrantIndex) -> None:
    await index.ensure_collection("docs", 4)
    await index.upsert_document("docs", "shared", "s.md", ["shared"], [unit(0)])
    await index.upsert_document("docs", "a1", "a.md", ["alice's"], [unit(0)], owner="alice")
    await index.upsert_document("docs", "b1", "b.md", ["bob's"], [unit(0)], owner="bob")
    assert await index.count("docs") == 1
    assert await index.count("docs", owner="alice") == 1
    assert await index.count("docs", owner="carol") == 0

    anonymous = await index.search("docs", unit(0), top_k=5)
    assert [p.text for p in anonymous] == ["shared"]
    alice = await index.search("docs", unit(0), top_k=5, owner="alice")
    assert sorted(p.text for p in alice) == ["alice's", "shared"]
    carol = await index.search("docs", unit(0), top_k=5, owner="carol")
    assert [p.text for p in carol] == ["shared"]
    # Emptying an owner's document removes it; an unknown owner's empty upsert is a no-op.
    assert await index.upsert_document("docs", "a1", "a.md", [], [], owner="alice") == 0
    assert await index.upsert_document("docs", "c1", "c.md", [], [], owner="carol") == 0
    assert await index.count("docs", owner="alice") == 0


def test_only_allow_listed_names_are_shared_and_others_stay_the_callers_own() -> None:
    def resolve(name: str | None, owner: str | None = "bob") -> CollectionScope:
        return resolve_collection(name, default="docs", shared=["team"], owner=owner)

    assert resolve(None) == CollectionScope("docs", shared=True)
    assert resolve("docs") == CollectionScope("docs", shared=True)
    assert resolve("team", owner=None) == CollectionScope("team", shared=True)
    assert resolve("private") == CollectionScope("private", shared=False)
    alices = owner_collection("docs", "alice")
    for name in (alices, alices.upper(), "docs__owner_", "x__OWNER_" + alices[-20:]):
        with pytest.raises(CollectionRefused, match=r"reserved|not valid"):
            resolve(name)
    for name in ("", "a b", "../docs", "-docs", "d" * 65, "docs\x00"):
        with pytest.raises(CollectionRefused, match="not valid"):
            resolve(name)
    with pytest.raises(CollectionRefused, match="not shared"):
        resolve("private", owner=None)


async def test_an_unshared_scope_reads_only_the_callers_part(index: QdrantIndex) -> None:
    await index.ensure_collection("docs", 4)
    await index.upsert_document("docs", "shared", "s.md", ["shared"], [unit(0)])
    await index.upsert_document("docs", "b1", "b.md", ["bob's"], [unit(0)], owner="bob")

    bob = await index.search("docs", unit(0), top_k=5, owner="bob", shared=False)
    assert [p.text for p in bob] == ["bob's"]
    assert await index.search("docs", unit(0), top_k=5, owner="carol", shared=False) == []
    # A shared name nobody created yet is empty, not an error.
    assert await index.search("nothing", unit(0), top_k=5, owner="bob") == []


async def test_an_owned_ingest_creates_no_shared_collection(index: QdrantIndex) -> None:
    await ingest_documents(
        [("a.md", "alpha text")],
        index=index,
        embedder=HashEmbedder(),
        collection="made",
        owner="al",
    )
    assert await index.count("made", owner="al") == 1
    assert not await index._client.collection_exists("made")


async def test_reingesting_replaces_a_documents_chunks(index: QdrantIndex) -> None:
    await index.ensure_collection("docs", 4)
    chunks = ["one", "two", "three"]
    vectors = [unit(0), unit(1), unit(2)]
    await index.upsert_document("docs", "d1", "a.md", chunks, vectors)
    await index.upsert_document("docs", "d1", "a.md", chunks, vectors)
    assert await index.count("docs") == 3
    # A shorter new version leaves no stale chunks behind.
    await index.upsert_document("docs", "d1", "a.md", ["uno"], [unit(3)])
    assert await index.count("docs") == 1
    hits = await index.search("docs", unit(3), top_k=3)
    assert [h.text for h in hits] == ["uno"]
    await index.upsert_document("docs", "d1", "a.md", [], [])
    assert await index.count("docs") == 0


async def test_mismatches_are_refused(index: QdrantIndex) -> None:
    await index.ensure_collection("docs", 4)
    with pytest.raises(ValueError, match="size 4"):
        await index.ensure_collection("docs", 8)
    with pytest.raises(ValueError, match="vectors"):
        await index.upsert_document("docs", "d", "s", ["a", "b"], [unit(0)])


def test_index_needs_exactly_one_location() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        QdrantIndex()
    with pytest.raises(ValueError, match="exactly one"):
        QdrantIndex(location=":memory:", url="http://127.0.0.1:6333")


async def test_embedded_index_persists_on_disk(tmp_path: Path) -> None:
    async with QdrantIndex(path=tmp_path / "qdrant") as first:
        await first.ensure_collection("docs", 4)
        await first.upsert_document("docs", "d1", "a.md", ["kept"], [unit(2)])
    async with QdrantIndex(path=tmp_path / "qdrant") as second:
        assert await second.count("docs") == 1
        assert [p.text for p in await second.search("docs", unit(2), top_k=1)] == ["kept"]


def test_sample_corpus_is_shipped() -> None:
    files = sorted(sample_corpus_dir().glob("*.md"))
    assert 5 <= len(files) <= 8
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert text.startswith("# ")
        assert 300 <= len(re.findall(r"\S+", text)) <= 800, file.name


async def test_ingest_the_sample_corpus_and_find_answers(
    index: QdrantIndex, minilm: MiniLMEmbedder, tmp_path: Path
) -> None:
    calls: list[tuple[int, int]] = []
    # The cache makes the re-ingestion below cheap; the index must not notice.
    embedder = CachedEmbedder(minilm, MemoryCache(), ttl_seconds=600)
    report = await ingest_paths(
        [sample_corpus_dir()],
        index=index,
        embedder=embedder,
        collection="corpus",
        progress=lambda done, total: calls.append((done, total)),
    )
    files = len(list(sample_corpus_dir().glob("*.md")))
    assert report.files == files
    assert report.skipped == ()
    assert report.chunks == await index.count("corpus") > files
    assert calls[-1] == (files, files)

    async def top_source(question: str) -> str:
        (vector,) = await minilm.embed([question])
        return (await index.search("corpus", vector, top_k=1))[0].source

    assert await top_source("How does a human approve or reject a draft?") == (
        "human-in-the-loop-approvals.md"
    )
    assert await top_source("How do leases and heartbeats keep runs durable?") == (
        "durability-and-checkpoints.md"
    )
    assert await top_source("How do I start Trellis with docker compose?") == "docker-compose.md"
    assert await top_source("How does a client reconnect to an event stream?") == (
        "streaming-and-events.md"
    )
    assert await top_source("How is the critic's confidence score calculated?") == (
        "multi-agent-team.md"
    )

    # Re-ingesting is idempotent; document ids depend on the relative path only.
    again = await ingest_paths(
        [sample_corpus_dir()], index=index, embedder=embedder, collection="corpus"
    )
    assert again.chunks == report.chunks == await index.count("corpus")
    hits = await index.search("corpus", (await minilm.embed(["glossary"]))[0], top_k=50)
    assert document_id_for("glossary.md") in {h.document_id for h in hits}

    # Single files, nested directories, other suffixes and empty files.
    nested = tmp_path / "notes" / "deep"
    nested.mkdir(parents=True)
    (nested / "a.txt").write_text("Plain text notes about Redis streams.", encoding="utf-8")
    (tmp_path / "notes" / "empty.md").write_text("", encoding="utf-8")
    (tmp_path / "notes" / "image.png").write_bytes(b"\x89PNG")
    single = tmp_path / "single.md"
    single.write_text("# One\n\nA single file.", encoding="utf-8")
    report = await ingest_paths(
        [tmp_path / "notes", single], index=index, embedder=minilm, collection="notes"
    )
    assert (report.files, report.chunks, report.skipped) == (2, 2, ("notes/empty.md",))
    sources = {p.source for p in await index.search("notes", unit(0, 384), top_k=10)}
    assert sources == {"notes/deep/a.txt", "single.md"}  # relative to what holds them all
    with pytest.raises(FileNotFoundError):
        await ingest_paths([tmp_path / "missing"], index=index, embedder=minilm, collection="x")


def test_files_of_the_same_name_in_two_folders_are_two_documents(tmp_path: Path) -> None:
    for project in ("projA", "projB"):
        (tmp_path / project).mkdir()
        (tmp_path / project / "README.md").write_text(f"# {project}", encoding="utf-8")
    a, b = tmp_path / "projA", tmp_path / "projB"
    expected = ["projA/README.md", "projB/README.md"]
    assert [source for _, source in collect_files([a, b])] == expected
    assert [source for _, source in collect_files([a / "README.md", b / "README.md"])] == expected
    # One folder alone is its own root (the sample corpus keeps its plain names)...
    assert [source for _, source in collect_files([a])] == ["README.md"]
    # ...unless the caller names the root, as `trellis ingest` does with its working directory.
    assert [source for _, source in collect_files([a], root=tmp_path)] == ["projA/README.md"]
    assert document_id_for("projA/README.md") != document_id_for("projB/README.md")


def test_duplicates_are_reported_by_content() -> None:
    documents = [("a.md", "same"), ("b.md", "other"), ("c/a.md", "same"), ("e.md", ""), ("f", "")]
    assert duplicate_sources(documents) == [("c/a.md", "a.md")]
