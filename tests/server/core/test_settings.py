"""Settings as a newcomer meets them: `.env.example` documents every setting and, copied to
`.env` as is, changes nothing."""

from __future__ import annotations

import re

import pytest
from dotenv import dotenv_values
from pydantic import ValidationError

from server.core.settings import ROOT, Settings, describe_settings_error

EXAMPLE = ROOT / ".env.example"


def test_env_example_sets_nothing_when_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    assert dotenv_values(EXAMPLE) == {}
    copied = Settings(_env_file=EXAMPLE)
    assert copied.model_fields_set == set()
    assert copied.database_url == Settings.model_fields["database_url"].default


def test_env_example_names_every_setting() -> None:
    documented = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", EXAMPLE.read_text(), re.MULTILINE))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert missing == set()


@pytest.mark.parametrize(
    ("environment", "tracing_on"),
    [
        ({"LANGSMITH_TRACING": "true", "LANGSMITH_API_KEY": "lsv2-x"}, True),
        ({"LANGCHAIN_TRACING_V2": "true", "LANGCHAIN_API_KEY": "lsv2-x"}, True),
        ({"LANGSMITH_TRACING": "true"}, False),  # no key: nothing is sent
        ({"LANGSMITH_API_KEY": "lsv2-x"}, False),  # langchain traces only when told to
        ({}, False),
    ],
)
def test_langsmith_tracing_is_read_under_langchains_names(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], tracing_on: bool
) -> None:
    for name in ("LANGSMITH_", "LANGCHAIN_"):
        for suffix in ("TRACING", "TRACING_V2", "API_KEY", "ENDPOINT"):
            monkeypatch.delenv(name + suffix, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).langsmith_tracing_on is tracing_on


def problems(monkeypatch: pytest.MonkeyPatch, **environment: str) -> list[str]:
    """The lines `trellis` prints for these variables (none when they are valid)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    try:
        Settings(_env_file=None)
    except ValidationError as error:
        return describe_settings_error(error)
    return []


def test_shared_collections_are_a_comma_list_of_plain_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHARED_COLLECTIONS", " team, handbook-2 ,")
    assert Settings(_env_file=None).shared_collections == ["team", "handbook-2"]
    for value, reason in [("team,docs__owner_abc", "reserved"), ("a b", "not a collection")]:
        [line] = problems(monkeypatch, SHARED_COLLECTIONS=value)
        assert line.startswith("SHARED_COLLECTIONS=")
        assert reason in line
    [line] = problems(monkeypatch, SHARED_COLLECTIONS="", COLLECTION="x__Owner_1")
    assert line.startswith("COLLECTION=")


def test_the_decode_budget_must_fit_one_image_of_the_pixel_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings(_env_file=None)
    assert (defaults.image_max_pixels, defaults.image_decode_budget_mb) == (16_000_000, 256)
    [line] = problems(monkeypatch, IMAGE_MAX_PIXELS="40000000", IMAGE_DECODE_BUDGET_MB="256")
    assert "IMAGE_DECODE_BUDGET_MB=256 is too small" in line
    assert "IMAGE_MAX_PIXELS=40000000" in line
    assert problems(monkeypatch, IMAGE_DECODE_BUDGET_MB="372") == []
