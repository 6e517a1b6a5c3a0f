"""`trellis ingest`: index files into the assistant's collection, locally or through a server.

A document is named by its path relative to the ingest root: the working directory when
every given path is inside it (so `trellis ingest projA` and `trellis ingest projB` never
overwrite each other's `README.md`), else the deepest directory holding them all.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NotRequired, TextIO, TypedDict

import httpx

from server.builtin_toolbox import open_embedder, open_index
from server.core.settings import Settings
from server.ops.embedded import qdrant_in_use
from tools.retrieval import (
    CollectionRefused,
    IndexLocked,
    collect_files,
    duplicate_sources,
    ingest_paths,
    ingest_root,
    resolve_collection,
)

Progress = Callable[[int, int], None]
"""Called with (files done, files in all)."""


class IngestReport(TypedDict):
    """What an ingest did (`trellis ingest` prints it)."""

    documents: int
    chunks: int
    skipped: list[str]
    """Sources that were empty or not UTF-8 text."""
    duplicates: list[tuple[str, str]]
    """`(source, same_as)`: documents with exactly the text of an earlier one."""
    root: str
    """The directory the sources are relative to."""
    collection: NotRequired[str]
    """The Qdrant collection (absent when a remote ingest sent no batch)."""
    total_chunks: NotRequired[int]
    """Chunks in the collection afterwards."""


def _read(file: Path) -> str:
    return file.read_text(encoding="utf-8", errors="replace")


def cli_root(paths: Sequence[str]) -> Path:
    """The ingest root for `paths` given on the command line (see the module docstring).

    Exits with one line when one of them does not exist."""
    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        raise SystemExit(f"trellis: no such file or directory: {', '.join(missing)}")
    cwd = Path.cwd().resolve()
    resolved = [Path(p).resolve() for p in paths]
    if all(path.is_relative_to(cwd) for path in resolved):
        return cwd
    return ingest_root(resolved)


class ProgressBar:
    """`Progress` drawn on one terminal line: files done, rate and time left."""

    def __init__(self, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.out = out
        self.width = width
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        """Redraw for `done` of `total` files; ends the line at the last one."""
        self.out.write("\r" + self.render(done, total, time.monotonic() - self.started))
        if done >= total:
            self.out.write("\n")
        self.out.flush()

    def render(self, done: int, total: int, elapsed: float) -> str:
        """The line for `done` of `total` files after `elapsed` seconds."""
        filled = self.width * done // max(total, 1)
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} files"
        if done <= 0 or elapsed <= 0:
            return bar
        rate = done / elapsed
        left = (total - done) / rate
        timing = f"ETA {_duration(left)}" if done < total else f"in {_duration(elapsed)}"
        return f"{bar}  {rate:.1f} files/s  {timing}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


async def ingest_local(
    paths: Sequence[str], *, settings: Settings, collection: str | None, progress: Progress
) -> IngestReport:
    """Open the index directly (no server may hold an embedded Qdrant directory meanwhile).

    What it ingests is shared with every caller, so only into `COLLECTION` or one of
    `SHARED_COLLECTIONS`: it exits with one line for any other name."""
    try:
        name = resolve_collection(
            collection, default=settings.collection, shared=settings.shared_collections, owner=None
        ).name
    except CollectionRefused as error:
        raise SystemExit(f"trellis: {error}") from None
    root = cli_root(paths)
    try:
        index = open_index(settings)
    except IndexLocked as error:
        raise SystemExit(qdrant_in_use(error, "ingest")) from None
    try:
        report = await ingest_paths(
            paths,
            index=index,
            embedder=open_embedder(settings),
            collection=name,
            progress=progress,
            root=root,
        )
        total = await index.count(name)
    finally:
        await index.close()
    return {
        "collection": name,
        "documents": report.files,
        "chunks": report.chunks,
        "skipped": list(report.skipped),
        "duplicates": list(report.duplicates),
        "root": str(root),
        "total_chunks": total,
    }


async def ingest_remote(
    paths: Sequence[str],
    *,
    server: str,
    collection: str | None,
    api_key: str | None,
    progress: Progress,
    batch: int = 20,
) -> IngestReport:
    """Send the files to a running server's `POST /documents/ingest`, a batch at a time."""
    root = cli_root(paths)
    files = collect_files(paths, root=root)
    headers = {"x-api-key": api_key} if api_key else {}
    totals: IngestReport = {
        "documents": 0,
        "chunks": 0,
        "skipped": [],
        "duplicates": [],
        "root": str(root),
    }
    texts: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=300) as client:
        for start in range(0, len(files), batch):
            chunk = files[start : start + batch]
            documents = [
                {"source": source, "text": await asyncio.to_thread(_read, file)}
                for file, source in chunk
            ]
            texts += [(doc["source"], doc["text"]) for doc in documents]
            body: dict[str, object] = {"documents": documents}
            if collection:
                body["collection"] = collection
            response = await client.post("/documents/ingest", json=body)
            if response.status_code != 200:
                raise SystemExit(
                    f"trellis: server answered {response.status_code}: {response.text}"
                )
            data = response.json()
            totals["documents"] += data["documents"]
            totals["chunks"] += data["chunks"]
            totals["skipped"] += data["skipped"]
            totals["collection"] = data["collection"]
            totals["total_chunks"] = data["total_chunks"]
            progress(min(start + batch, len(files)), len(files))
    totals["duplicates"] = duplicate_sources(texts)
    return totals
