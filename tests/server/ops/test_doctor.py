"""`trellis doctor`: one line per check, what to do when one fails, exit 1 on a failure."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from server.cli import main
from tests.support.pg_cluster import cluster_user
from tests.support.servers import TEST_GRAPHS, free_port, scratch_database

CHECKS = [
    "configuration",
    "postgres",
    "migrations",
    "extensions",
    "redis",
    "qdrant",
    "model endpoint",
    "tesseract",
    "tracing",
    "graphs",
]


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, str]]:
    """Run `trellis doctor`; its exit code and its line per check, by check name."""
    code = main(["doctor", *args])
    lines = capsys.readouterr().out.strip().splitlines()
    by_name = {}
    for line in lines[:-1]:
        level, _, rest = line.partition("  ")
        name, _, _ = rest.strip().partition(":")
        by_name[name] = f"{level.strip()} {rest.strip()}"
    assert lines[-1] in ("trellis: all checks passed", "trellis: some checks failed (FAIL above)")
    return code, by_name


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, database_url: str, server_url: str
) -> pytest.MonkeyPatch:
    """The test database, migrated by the session's server; no model endpoint."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "QDRANT_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_healthy_setup_passes(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(capsys, "--config", str(TEST_GRAPHS))
    assert list(lines) == CHECKS
    for name in ("configuration", "postgres", "migrations", "redis", "graphs"):
        assert lines[name].startswith(f"ok {name}: "), lines[name]
    assert "PostgreSQL " in lines["postgres"]
    assert "at head (" in lines["migrations"]
    assert "'echo'" in lines["graphs"]
    assert lines["tesseract"].split()[0] in ("ok", "warn")  # OCR is optional
    assert code == 0


def test_postgres_that_does_not_answer_fails(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    code, lines = doctor(capsys, "--config", str(TEST_GRAPHS))
    assert code == 1
    assert lines["postgres"].startswith("FAIL postgres: Postgres at postgresql://")
    assert lines["postgres"].endswith("-> check DATABASE_URL and that Postgres runs")
    assert lines["migrations"].startswith("FAIL migrations: unknown")
    assert lines["graphs"].startswith("ok graphs")


def test_a_missing_redis_warns_without_failing(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, lines = doctor(capsys, "--config", str(TEST_GRAPHS))
    assert lines["redis"].startswith("warn redis: no answer at redis://127.0.0.1:")
    assert "-> start Redis or fix REDIS_URL" in lines["redis"]
    assert code == 0


def test_a_graph_that_does_not_load_fails(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"gone": "./missing_module.py:graph"}}))
    code, lines = doctor(capsys, "--config", str(config))
    assert code == 1
    assert lines["graphs"].startswith("FAIL graphs: 1 of 1 did not load: 'gone': ")
    assert "missing_module.py" in lines["graphs"]
    assert lines["graphs"].endswith(f"-> fix the graph files named in {config}")


def test_no_langgraph_json_fails(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, lines = doctor(capsys, "--config", str(tmp_path / "absent.json"))
    assert code == 1
    assert lines["configuration"].startswith("FAIL configuration: no langgraph.json at ")
    assert "graphs" not in lines


def test_without_pg_stat_statements_the_extensions_line_says_how_to_enable_it(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(capsys, "--config", str(TEST_GRAPHS))
    assert lines["extensions"].startswith("warn extensions: plpgsql "), lines["extensions"]
    assert "pg_stat_statements not installed -> " in lines["extensions"]
    assert "shared_preload_libraries" in lines["extensions"]
    assert code == 0  # a warning: Trellis serves without it


def test_pg_stat_statements_created_but_not_preloaded_says_so(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with scratch_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        environment.setenv("DATABASE_URL", url)
        _, lines = doctor(capsys, "--config", str(TEST_GRAPHS))
    line = lines["extensions"]
    assert line.startswith("warn extensions: "), line
    assert "pg_stat_statements must be loaded via" in line
    assert line.endswith("then run CREATE EXTENSION pg_stat_statements")


def test_pg_stat_statements_top_statements_by_total_time(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A cluster of its own, from the machine's Postgres (which ships the extension),
    # started with it preloaded.
    found = sorted(Path("/usr/lib/postgresql").glob("*/lib/pg_stat_statements.so"))
    assert found, "the machine's Postgres ships pg_stat_statements"
    binaries = found[-1].parent.parent / "bin"
    base = Path(tempfile.mkdtemp(prefix="trellis-pgss-"))
    base.chmod(0o755)
    user = cluster_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    port = free_port()

    def run(*command: str) -> None:
        subprocess.run(command, user=user, check=True, capture_output=True, timeout=120)

    data = base / "data"
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"),
            "-o", f"-h 127.0.0.1 -p {port} -k {base}", "start")  # fmt: skip
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            for _ in range(3):
                conn.execute("SELECT pg_sleep(0.05), 'a secret value'")
        environment.setenv("DATABASE_URL", url)
        _, lines = doctor(capsys, "--config", str(TEST_GRAPHS))
    finally:
        if (data / "postmaster.pid").exists():
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)
    line = lines["extensions"]
    assert line.startswith("ok extensions: "), line
    assert "pg_stat_statements " in line
    top = line.partition("top statements by total time: ")[2]
    assert top.startswith("1) "), line
    assert "in 3 calls: SELECT pg_sleep($1), $2" in top  # normalized: never a parameter
    assert "secret" not in line
    assert "4) " not in top  # three at most


def test_the_tracing_line_says_where_spans_go(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, lines = doctor(capsys, "--config", str(TEST_GRAPHS))
    assert lines["tracing"] == "ok tracing: off (set OTEL_TRACES_EXPORTER=otlp or console to trace)"
    environment.setenv("OTEL_TRACES_EXPORTER", "console")
    environment.setenv("OTEL_SERVICE_NAME", "checked")
    _, lines = doctor(capsys, "--config", str(TEST_GRAPHS))
    assert lines["tracing"] == "ok tracing: spans printed on stdout (service checked)"
