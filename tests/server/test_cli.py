"""`trellis` as a newcomer meets it: a configuration mistake is one line per problem, not a
traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import BaseModel, ValidationError

from server.core.settings import describe_settings_error


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AUTH_MODE", "bogus", "AUTH_MODE='bogus': Input should be 'none', 'api_key'"),
        ("CORS_ORIGINS", "not-json", "CORS_ORIGINS: not valid JSON"),
        ("PORT", "eighty", "PORT='eighty': Input should be a valid integer"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(variable: str, value: str, expected: str) -> None:
    env = {**os.environ, variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("trellis: configuration: ")
    assert expected in lines[0]


def test_a_secret_is_not_repeated_back() -> None:
    class Secrets(BaseModel):
        openai_api_key: int

    with pytest.raises(ValidationError) as caught:
        Secrets(openai_api_key="sk-very-secret")  # type: ignore[arg-type]
    (line,) = describe_settings_error(caught.value)
    assert line.startswith("OPENAI_API_KEY=***: ")
    assert "sk-very-secret" not in line


def test_version_and_option_help_name_defaults_and_variables() -> None:
    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return " ".join(done.stdout.split())

    assert run("--version").startswith("trellis ")
    serve = run("serve", "--help")
    assert "(default: 8123; environment: PORT)" in serve
    assert "(default: 127.0.0.1; environment: HOST)" in serve
    assert "environment: GRAPHS_CONFIG" in serve
    assert "(default: 32; environment: RUN_CONCURRENCY)" in run("worker", "--help")
