"""`resources/thread_service.py`: the configs that name a thread's checkpoints."""

from __future__ import annotations

from server.core.schemas import CheckpointRef
from server.resources.thread_service import state_config


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
