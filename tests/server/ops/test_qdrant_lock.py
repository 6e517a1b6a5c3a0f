"""A second process in the same checkout and the embedded Qdrant a running server holds.

Commands without vectors (`keys`, `migrate`) work beside it; those that need them refuse in
one line naming the process that holds it and what to run instead; a graph run outside
Trellis (the default toolbox of `langgraph dev`) gets an error naming it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ROOT, free_port, scratch_database, server_process
from tools.retrieval import embedded_index_holder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def holder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """`trellis serve` of the built-in graphs on embedded Qdrant; the env to run beside it."""
    data = tmp_path_factory.mktemp("checkout") / ".trellis"
    with scratch_database() as url:
        env = {"EMBEDDED_DATA_DIR": str(data), "SEED_SAMPLE_CORPUS": "false"}
        with server_process(database_url=url, config=ROOT / "langgraph.json", env=env) as (_, proc):
            yield proc, {**env, "DATABASE_URL": url}


def beside(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_servers_lock_is_seen(
    holder: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    proc, env = holder
    assert embedded_index_holder(Path(env["EMBEDDED_DATA_DIR"]) / "qdrant") == (True, proc.pid)


@pytest.mark.parametrize(
    ("args", "instead"),
    [
        (("worker",), "executes queued runs itself"),
        (("ingest", "README.md"), "trellis ingest --server http://127.0.0.1:8123"),
        (("serve", "--port", "0"), "Two servers need a Qdrant server"),
    ],
    ids=["worker", "ingest", "serve"],
)
def test_commands_that_need_vectors_refuse_in_one_line(
    holder: tuple[subprocess.Popen[bytes], dict[str, str]], args: tuple[str, ...], instead: str
) -> None:
    proc, env = holder
    if args[0] == "serve":
        args = ("serve", "--port", str(free_port()))
    done = beside(env, *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("trellis: the embedded Qdrant in ")
    assert f"is open in pid {proc.pid} (" in line
    assert "server.cli serve" in line
    assert "QDRANT_URL=http://127.0.0.1:6333" in line
    assert instead in line


def test_commands_without_vectors_work_beside_it(
    holder: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    _, env = holder
    migrated = beside(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    created = beside({**env, "AUTH_MODE": "api_key"}, "keys", "create", "--owner", "alice")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("trellis_")
    listed = beside(env, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "alice" in listed.stdout


def test_a_graph_run_outside_trellis_names_the_holder(
    holder: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    """What `langgraph dev` meets: the default toolbox opens `.trellis/qdrant` in its cwd."""
    proc, env = holder
    checkout = Path(env["EMBEDDED_DATA_DIR"]).parent
    done = subprocess.run(
        [sys.executable, "-c", "from tools.toolbox import default_toolbox; default_toolbox()"],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tools.retrieval.IndexLocked: the embedded Qdrant in ")
    assert f"is open in pid {proc.pid} (" in last
