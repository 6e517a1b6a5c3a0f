"""`langgraph.json` `checkpointer`: parsed, validated with one line naming the key, and the
keys Trellis does not apply warned about."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from server.graph_host.checkpointer_config import (
    CheckpointerConfig,
    CheckpointerConfigError,
    ThreadTtlDefaults,
    read_checkpointer,
)
from server.graph_host.registry import GraphLoadError, read_config


def test_absent_is_no_ttl_and_no_retention() -> None:
    assert read_checkpointer(None) == CheckpointerConfig()
    assert read_checkpointer({}).ttl.default_ttl is None


def test_the_official_ttl_shape_and_keep_last() -> None:
    config = read_checkpointer(
        {
            "ttl": {
                "strategy": "keep_latest",
                "default_ttl": 0.5,
                "sweep_interval_minutes": 2,
                "sweep_limit": 10,
            },
            "keep_last": 20,
        }
    )
    assert config.ttl == ThreadTtlDefaults("keep_latest", 0.5, 2.0, 10)
    assert config.keep_last == 20


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ([], "'checkpointer'"),
        ({"ttl": 5}, "'checkpointer.ttl'"),
        ({"ttl": {"strategy": "nonsense"}}, "'checkpointer.ttl.strategy'"),
        ({"ttl": {"default_ttl": -5}}, "'checkpointer.ttl.default_ttl'"),
        ({"ttl": {"default_ttl": "soon"}}, "'checkpointer.ttl.default_ttl'"),
        ({"ttl": {"sweep_interval_minutes": 0}}, "'checkpointer.ttl.sweep_interval_minutes'"),
        ({"ttl": {"sweep_limit": 1.5}}, "'checkpointer.ttl.sweep_limit'"),
        ({"keep_last": 0}, "'checkpointer.keep_last'"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_key(raw: object, key: str) -> None:
    with pytest.raises(CheckpointerConfigError) as caught:
        read_checkpointer(raw)
    message = str(caught.value)
    assert key in message
    assert "\n" not in message


def test_read_config_refuses_a_wrong_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text(
        json.dumps(
            {"graphs": {"g": "./g.py:graph"}, "checkpointer": {"ttl": {"strategy": "never"}}}
        )
    )
    with pytest.raises(GraphLoadError, match=r"'checkpointer\.ttl\.strategy'"):
        read_config(path)


def test_keys_trellis_does_not_apply_are_warned_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="trellis"):
        read_checkpointer(
            {"backend": "mongo", "serde": {"pickle_fallback": False}, "ttl": {"extra": 1}}
        )
    lines = [r.getMessage() for r in caplog.records]
    for key in ("checkpointer.backend", "checkpointer.serde", "checkpointer.ttl.extra"):
        assert sum(key in line for line in lines) == 1, lines
