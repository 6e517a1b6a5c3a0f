"""Settings as a newcomer meets them: `.env.example` documents every setting and, copied to
`.env` as is, changes nothing."""

from __future__ import annotations

import re

import pytest
from dotenv import dotenv_values

from server.core.settings import ROOT, Settings

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
