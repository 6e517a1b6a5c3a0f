"""`resources/thread_service.py`: the configs that name a thread's checkpoints; `values`
filters checked outside Postgres."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from server.core.schemas import CheckpointRef
from server.core.settings import Settings
from server.resources.thread_service import json_contains, state_config


def test_latest_checkpoint_names_only_the_thread() -> None:
    assert state_config("t-1") == {"configurable": {"thread_id": "t-1", "checkpoint_ns": ""}}


def test_a_reference_names_its_namespace_checkpoint_and_map() -> None:
    ref = CheckpointRef(checkpoint_id="c-1", checkpoint_ns="child:1", checkpoint_map={"": "c-0"})
    assert state_config("t-1", ref) == {
        "configurable": {
            "thread_id": "t-1",
            "checkpoint_ns": "child:1",
            "checkpoint_id": "c-1",
            "checkpoint_map": {"": "c-0"},
        }
    }


def test_an_empty_reference_keeps_the_latest_checkpoint() -> None:
    config = state_config("t-1", CheckpointRef(checkpoint_ns="child:1"))
    assert config == {"configurable": {"thread_id": "t-1", "checkpoint_ns": "child:1"}}


def test_a_checkpoint_id_wins_over_the_reference() -> None:
    config = state_config("t-1", CheckpointRef(checkpoint_id="c-1"), checkpoint_id="c-9")
    assert config["configurable"]["checkpoint_id"] == "c-9"


@pytest.mark.parametrize(
    ("document", "pattern", "expected"),
    [
        ({"a": 1, "b": {"c": [1, 2]}}, {"b": {"c": [2]}}, True),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": [{"id": "1", "x": 2}]}, {"a": [{"id": "1"}]}, True),
        ({"a": [{"id": "1"}]}, {"a": [{"id": "2"}]}, False),
        ({"a": ["x"]}, {"a": "x"}, False),
        (["x", "y"], "x", True),
        ({"a": 1}, {"b": None}, False),
        ({"a": None}, {"a": None}, True),
    ],
)
def test_values_filters_contain_as_postgres_does(
    document: object, pattern: object, expected: bool, settings: Settings
) -> None:
    assert json_contains(document, pattern) is expected
    with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
        row = conn.execute("SELECT %s::jsonb @> %s::jsonb", (Jsonb(document), Jsonb(pattern)))
        assert row.fetchone() == (expected,)
