"""`benchmarks/long_thread.py --quick`: it runs end to end and prints its table with numbers.

The goals are not asserted here (a quick run is too short to judge them); only that every row
of the table is measured at every checkpoint and the goal lines are printed.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

ROWS = (
    "Postgres bytes for the thread",
    "  of which checkpoint_blobs",
    "  of which checkpoints",
    "  of which checkpoint_writes",
    "  of which runs",
    "  of which threads",
    "Redis bytes (keys of its runs)",
    "payload added",
    "turn latency, median of last 20",
    "POST /history limit 10",
    "POST /history limit 1000",
    "server RSS growth, limit 1000",
    "stock AsyncPostgresSaver bytes",
    "stock saver turn latency",
    "floor (decode + JSON encode)",
)
NUMBER = re.compile(r"\d+(\.\d+)? (MB|ms)")


@pytest.mark.slow
def test_quick_mode_prints_the_table_with_numbers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.long_thread", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("after N turns"))
    assert [cell.strip() for cell in header.split("|")[1:]] == ["20 turns", "60 turns"]
    for row in ROWS:
        line = next(line for line in lines if line.startswith(row + " "))
        cells = [cell.strip() for cell in line.split("|")[1:]]
        assert len(cells) == 2, line
        assert all(NUMBER.search(cell) for cell in cells), line
    payload = next(line for line in lines if line.startswith("payload added"))
    assert "0.00 MB" not in payload
    delete = next(line for line in lines if line.startswith("delete thread"))
    assert re.search(r"\d+ ms, \d+ rows, \d+ keys left$", delete), delete
    assert sum(line.startswith("goal ") for line in lines) >= 5
