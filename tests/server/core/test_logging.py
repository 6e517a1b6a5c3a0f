"""Logs as people and collectors read them: `key=value` text keeps every structured field,
a fatal error is one full record plus one short line for a human, and a `langgraph.json`
mistake is that one line alone."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.core.logging import JsonFormatter, TextFormatter, report_fatal
from tests.support.servers import ROOT, free_port, scratch_database


def record(**extra: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "trellis", logging.WARNING, __file__, 1, "no Redis at %s", ("X",), None
    )
    made.__dict__.update(extra)
    return made


def test_text_format_shows_the_structured_fields_as_key_value() -> None:
    line = TextFormatter().format(
        record(redis_url="127.0.0.1:6379/0", graphs=["a", "b"], note="two words", n=3)
    )
    assert line.endswith(
        'WARNING trellis no Redis at X redis_url=127.0.0.1:6379/0 graphs=["a","b"] '
        'note="two words" n=3'
    )


def test_json_and_text_carry_the_same_fields() -> None:
    fields = {"run_id": "r1", "attempt": 2}
    data = json.loads(JsonFormatter().format(record(**fields)))
    text = TextFormatter().format(record(**fields))
    assert {k: data[k] for k in fields} == fields
    assert "run_id=r1 attempt=2" in text


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_langgraph_json_mistake_is_one_human_line_in_either_log_format(
    tmp_path: Path, log_format: str
) -> None:
    config = tmp_path / "langgraph.json"
    # A broken entry is served as unavailable; a langgraph.json without graphs cannot start.
    config.write_text(json.dumps({"graphs": {}}))
    port = str(free_port())
    with scratch_database() as database_url:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LOG_FORMAT": log_format,
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_ENABLED": "false",
        }
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--config", str(config), "--port", port],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    human = [line for line in lines if line.startswith("trellis: could not start: ")]
    assert lines == human, done.stderr[-2000:]
    assert "langgraph.json" in human[0]
    assert "'graphs'" in human[0]
    assert len(human[0]) < 400


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_a_fatal_error_is_a_full_record_then_one_short_line(
    formatter: logging.Formatter, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("trellis")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    try:
        try:
            raise ConnectionRefusedError("no Postgres at 127.0.0.1:1\nsecond line")
        except ConnectionRefusedError as error:
            report_fatal("could not start", error)
    finally:
        logger.removeHandler(handler)
    lines = capsys.readouterr().err.splitlines()
    assert (
        lines[-1] == "trellis: could not start: ConnectionRefusedError: no Postgres at 127.0.0.1:1"
    )
    if isinstance(formatter, JsonFormatter):
        fatal = json.loads(lines[0])
        assert (fatal["event"], fatal["level"]) == ("fatal", "critical")
        assert "Traceback" in fatal["exc"]
    else:
        assert "CRITICAL trellis could not start" in lines[0]
        assert "event=fatal" in lines[0]
        assert any(line.startswith("Traceback") for line in lines)
