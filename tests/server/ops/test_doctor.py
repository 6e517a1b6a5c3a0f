"""`trellis doctor`: one line per check, what to do when one fails, exit 1 on a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import main
from tests.support.servers import TEST_GRAPHS, free_port

CHECKS = [
    "configuration",
    "postgres",
    "migrations",
    "redis",
    "qdrant",
    "model endpoint",
    "tesseract",
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
