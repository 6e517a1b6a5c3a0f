"""Security events keep every field in both log formats (`LOG_FORMAT=text` included)."""

from __future__ import annotations

import json
import logging

import pytest

from server.core.audit import security_event
from server.core.logging import JsonFormatter, TextFormatter

FIELDS = {
    "mode": "api_key",
    "reason": "invalid or revoked API key",
    "client": "203.0.113.7",
    "path": "/threads/search",
    "method": "POST",
    "key_id": "abcdefghijkl",
}


def test_a_security_event_keeps_its_fields_as_text_and_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="trellis.security"):
        security_event("auth_failed", **FIELDS)
    [record] = caplog.records
    text = TextFormatter().format(record)
    assert "trellis.security auth_failed security_event=auth_failed " in text
    for key, value in FIELDS.items():
        shown = value if " " not in value else json.dumps(value)
        assert f"{key}={shown}" in text
    data = json.loads(JsonFormatter().format(record))
    assert {k: data[k] for k in FIELDS} == FIELDS
    assert data["security_event"] == "auth_failed"
