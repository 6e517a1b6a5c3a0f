"""`trellis ingest`: documents are named by their path from the working directory, so two
`README.md` in two folders stay two documents, in one run or two; duplicates are reported;
the progress line shows the rate and the time left."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.ops.ingest import ProgressBar
from tests.support.servers import ROOT
from tools.retrieval import QdrantIndex, document_id_for

pytestmark = pytest.mark.slow


def ingest(workdir: Path, data: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    """`trellis ingest PATHS` run in `workdir` (no OpenAI: the local embedder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"PYTHONPATH": str(ROOT), "EMBEDDED_DATA_DIR": str(data), "LOG_LEVEL": "WARNING"}
    # No reachable database either: ingesting must not need one.
    env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none"
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "ingest", *paths],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_same_named_files_in_two_folders_stay_two_documents(tmp_path: Path) -> None:
    work, data = tmp_path / "work", tmp_path / "data"
    for project, topic in (("projA", "lighthouses"), ("projB", "volcanoes")):
        (work / project).mkdir(parents=True)
        (work / project / "README.md").write_text(
            f"# {project}\n\nThis project is about {topic} and nothing else.", encoding="utf-8"
        )
    (work / "projC").mkdir()
    (work / "projC" / "copy.md").write_text(
        (work / "projA" / "README.md").read_text(encoding="utf-8"), encoding="utf-8"
    )

    first = ingest(work, data, "projA", "projC")
    assert first.returncode == 0, first.stderr
    assert "ingested 2 documents" in first.stdout
    assert f"sources are paths relative to {work.resolve()}" in first.stdout
    assert "duplicate: projC/copy.md has the same text as projA/README.md" in first.stderr
    assert "2/2 files" in first.stderr
    assert "files/s" in first.stderr

    second = ingest(work, data, "projB")  # another run, another README.md
    assert second.returncode == 0, second.stderr
    assert "ingested 1 documents" in second.stdout

    async with QdrantIndex(path=data / "qdrant") as index:
        probe = [1.0] + [0.0] * 383
        hits = await index.search("documents", probe, top_k=50)
    by_source = {hit.source: hit for hit in hits}
    assert {"projA/README.md", "projB/README.md", "projC/copy.md"} <= set(by_source)
    assert by_source["projA/README.md"].document_id == document_id_for("projA/README.md")
    assert "lighthouses" in by_source["projA/README.md"].text
    assert "volcanoes" in by_source["projB/README.md"].text


def test_a_missing_path_is_one_line(tmp_path: Path) -> None:
    done = ingest(tmp_path, tmp_path / "data", "notes.md")
    assert done.returncode == 1
    assert done.stderr.strip() == "trellis: no such file or directory: notes.md"


def test_progress_shows_rate_and_time_left() -> None:
    bar = ProgressBar(out=io.StringIO(), width=10)
    assert bar.render(0, 20, 0.0) == "[..........] 0/20 files"
    assert bar.render(5, 20, 2.0) == "[##........] 5/20 files  2.5 files/s  ETA 6s"
    assert bar.render(10, 400, 30.0) == "[..........] 10/400 files  0.3 files/s  ETA 19m30s"
    assert bar.render(20, 20, 8.0) == "[##########] 20/20 files  2.5 files/s  in 8s"
    bar(3, 3)
    assert isinstance(bar.out, io.StringIO)
    assert bar.out.getvalue().startswith("\r[##########] 3/3 files")
    assert bar.out.getvalue().endswith("\n")
