"""Every key of `langgraph.json` gets exactly its treatment's line at startup, never silence."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from server.graph_host.config_keys import (
    SECTIONS,
    ConfigKeyError,
    config_notes,
    report_config_keys,
    validate_http,
)

BASE = {"graphs": {"g": "./g.py:graph"}}


def _config_with(section: str, key: str) -> dict[str, object]:
    """A config setting `key` (a dotted section path) and nothing else that needs a line."""
    if section == "":
        return BASE | {key: {}}
    if section == "http.cors":
        return BASE | {"http": {"cors": {key: []}}}
    return BASE | {section: {key: True}}


CASES = [
    (section, key, rule.treatment)
    for section, table in SECTIONS.items()
    for key, rule in table.items()
]


@pytest.mark.parametrize(("section", "key", "treatment"), CASES)
def test_each_key_produces_its_line(section: str, key: str, treatment: str) -> None:
    notes = config_notes(_config_with(section, key))
    dotted = f"{section}.{key}" if section else key
    # The enclosing section (`http`, `auth`) is supported: only the key itself may speak.
    assert [n.key for n in notes] == ([] if treatment == "supported" else [dotted])
    if treatment == "build":
        assert notes[0].level == logging.INFO
        assert "image builds" in notes[0].message
    elif treatment == "warned":
        assert notes[0].level == logging.WARNING
        assert f"{dotted!r} ignored" in notes[0].message


def test_the_official_schema_keys_are_all_in_the_table() -> None:
    """The keys the official CLI recognizes (`_KNOWN_CONFIG_KEYS`, `HttpConfig`, `AuthConfig`)."""
    official_top = {
        "python_version", "node_version", "api_version", "base_image", "image_distro",
        "pip_config_file", "pip_installer", "source", "dependencies", "dockerfile_lines",
        "graphs", "env", "store", "auth", "encryption", "priority", "http", "webhooks",
        "checkpointer", "ui", "ui_config", "keep_pkg_tools", "_INTERNAL_docker_tag",
        "project_root", "package",
    }  # fmt: skip
    official_http = {
        "app", "disable_assistants", "disable_threads", "disable_runs", "disable_store",
        "disable_mcp", "disable_a2a", "disable_meta", "disable_ui", "disable_webhooks",
        "cors", "configurable_headers", "logging_headers", "middleware_order",
        "enable_custom_route_auth", "mount_prefix", "disable_event_streaming",
    }  # fmt: skip
    official_auth = {"path", "disable_studio_auth", "allow_langsmith_api_keys", "openapi", "cache"}
    assert official_top <= set(SECTIONS[""])
    assert official_http <= set(SECTIONS["http"])
    assert official_auth <= set(SECTIONS["auth"])


@pytest.mark.parametrize(
    ("config", "key", "hint"),
    [
        (BASE | {"grahps": {}}, "grahps", "did you mean 'graphs'?"),
        (BASE | {"http": {"disable_thread": True}}, "http.disable_thread", "disable_threads"),
        (BASE | {"auth": {"path": "./a.py:a", "paht": 1}}, "auth.paht", "'path'"),
        (BASE | {"http": {"cors": {"allow_origin": ["x"]}}}, "http.cors.allow_origin", "allow_"),
        (BASE | {"colour": "blue"}, "colour", "not in the official schema"),
    ],
)
def test_unknown_keys_warn_once(config: dict[str, object], key: str, hint: str) -> None:
    notes = config_notes(config)
    assert [(n.key, n.level) for n in notes] == [(key, logging.WARNING)]
    assert "unknown key" in notes[0].message
    assert hint in notes[0].message


def test_middleware_order_auth_first_warns() -> None:
    assert config_notes(BASE | {"http": {"middleware_order": "middleware_first"}}) == []
    notes = config_notes(BASE | {"http": {"middleware_order": "auth_first"}})
    assert [(n.key, n.level) for n in notes] == [("http.middleware_order", logging.WARNING)]


def test_lines_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="trellis.config"):
        report_config_keys(BASE | {"python_version": "3.12", "encryption": {"path": "./e.py:e"}})
    assert [(r.levelno, r.getMessage().split(":")[1]) for r in caplog.records] == [
        (logging.INFO, " 'python_version'"),
        (logging.WARNING, " 'encryption' ignored"),
    ]


def test_the_docs_list_every_key() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "langgraph-json.md").read_text()
    missing = [
        f"{section}.{key}" if section else key
        for section, table in SECTIONS.items()
        for key in table
        if f"`{key}`" not in doc and f"`{section}.{key}`" not in doc
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("http", "message"),
    [
        ([], "'http' must be an object"),
        ({"disable_store": "yes"}, "'http.disable_store' must be true or false"),
        ({"enable_custom_route_auth": 1}, "'http.enable_custom_route_auth' must be true or false"),
        ({"cors": ["*"]}, "'http.cors' must be an object"),
        ({"cors": {"allow_origins": "https://a.example"}}, "allow_origins' must be a list"),
        ({"cors": {"allow_headers": [1]}}, "allow_headers' must be a list of strings"),
        ({"cors": {"allow_credentials": "true"}}, "allow_credentials' must be true or false"),
        ({"cors": {"max_age": -1}}, "'http.cors.max_age' must be a whole number"),
        ({"cors": {"max_age": True}}, "'http.cors.max_age' must be a whole number"),
        ({"cors": {"allow_origin_regex": "https://(a"}}, "must be a regular expression"),
    ],
)
def test_http_values_of_the_wrong_type_are_refused(http: object, message: str) -> None:
    with pytest.raises(ConfigKeyError, match=re.escape(message)):
        validate_http(http, "/srv/langgraph.json")


def test_valid_http_values_pass() -> None:
    validate_http(None)
    validate_http(
        {
            "disable_store": False,
            "enable_custom_route_auth": True,
            "cors": {
                "allow_origins": ["*"],
                "allow_credentials": False,
                "max_age": 0,
                "allow_origin_regex": r"^https://.*\.example$",
            },
        }
    )
