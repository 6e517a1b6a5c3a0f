"""`trellis ingest`: index files into the assistant's collection, locally or through a server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NotRequired, TypedDict

import httpx

from server.builtin_toolbox import open_embedder, open_index
from server.core.settings import Settings
from server.ops.embedded import qdrant_in_use
from tools.retrieval import IndexLocked, collect_files, ingest_paths

Progress = Callable[[int, int], None]
"""Called with (files done, files in all)."""


class IngestReport(TypedDict):
    """What an ingest did (`trellis ingest` prints it)."""

    documents: int
    chunks: int
    skipped: list[str]
    """Sources that were empty or not UTF-8 text."""
    collection: NotRequired[str]
    """The Qdrant collection (absent when a remote ingest sent no batch)."""
    total_chunks: NotRequired[int]
    """Chunks in the collection afterwards."""


def _read(file: Path) -> str:
    return file.read_text(encoding="utf-8", errors="replace")


async def ingest_local(
    paths: Sequence[str], *, settings: Settings, collection: str | None, progress: Progress
) -> IngestReport:
    """Open the index directly (no server may hold an embedded Qdrant directory meanwhile)."""
    name = collection or settings.collection
    try:
        index = open_index(settings)
    except IndexLocked as error:
        raise SystemExit(qdrant_in_use(error, "ingest")) from None
    try:
        report = await ingest_paths(
            paths, index=index, embedder=open_embedder(settings), collection=name, progress=progress
        )
        total = await index.count(name)
    finally:
        await index.close()
    return {
        "collection": name,
        "documents": report.files,
        "chunks": report.chunks,
        "skipped": list(report.skipped),
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
    files = collect_files(paths)
    headers = {"x-api-key": api_key} if api_key else {}
    totals: IngestReport = {"documents": 0, "chunks": 0, "skipped": []}
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=300) as client:
        for start in range(0, len(files), batch):
            chunk = files[start : start + batch]
            documents = [
                {"source": source, "text": await asyncio.to_thread(_read, file)}
                for file, source in chunk
            ]
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
    return totals
