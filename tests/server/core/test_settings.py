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


@pytest.mark.parametrize("name", ["RATE_LIMIT_PUBLIC", "RATE_LIMIT_RUNS"])
def test_a_bad_rate_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "lots")
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    assert describe_settings_error(refused.value) == [
        f"{name}='lots': expected a rate such as 600/minute or 10/second"
    ]


def test_an_owner_share_defaults_to_half_the_slots() -> None:
    assert Settings(_env_file=None, run_concurrency=4).owner_run_share == 2
    assert Settings(_env_file=None, run_concurrency=1).owner_run_share == 1
    shared = Settings(_env_file=None, run_concurrency=4, run_concurrency_per_owner=3)
    assert shared.owner_run_share == 3


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("", []),
        ("127.0.0.1", ["127.0.0.1"]),
        ("10.0.0.1, 10.1.0.0/16,::1", ["10.0.0.1", "10.1.0.0/16", "::1"]),
        ('["172.16.0.0/12", "*"]', ["172.16.0.0/12", "*"]),
    ],
)
def test_forwarded_allow_ips_reads_uvicorns_comma_list_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, parsed: list[str]
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    assert Settings(_env_file=None).forwarded_allow_ips == parsed


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("proxy.local", "FORWARDED_ALLOW_IPS='proxy.local': 'proxy.local' is not an IP address"),
        ("[10.0.0.1", "FORWARDED_ALLOW_IPS='[10.0.0.1': not a JSON list"),
    ],
)
def test_a_bad_forwarded_allow_ips_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, line: str
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)
    lines = describe_settings_error(raised.value)
    assert len(lines) == 1
    assert lines[0].startswith(line)


def test_allowed_hosts_are_names_without_scheme_or_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "DevBox, [fe80::1],trellis.internal")
    assert Settings(_env_file=None).allowed_hosts == ["devbox", "[fe80::1]", "trellis.internal"]
    monkeypatch.setenv("ALLOWED_HOSTS", "http://devbox:8123")
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)
    assert describe_settings_error(raised.value) == [
        "ALLOWED_HOSTS='http://devbox:8123': 'http://devbox:8123' is not a host name or address "
        "(no scheme or port)"
    ]


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
