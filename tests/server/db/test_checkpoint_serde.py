"""The checkpoint serializer compresses what compresses, and still refuses what it refuses."""

from __future__ import annotations

import pickle
import zlib

import pytest
from langchain_core.messages import AIMessage

from server.db.checkpoint_serde import CheckpointRejected, StrictSerializer


def test_large_values_are_compressed_and_read_back() -> None:
    serde = StrictSerializer()
    messages = [AIMessage("0123456789abcdef" * 64, id=f"m{i}") for i in range(3)]
    type_, blob = serde.dumps_typed(messages)
    assert type_ == "msgpack+zlib"
    assert len(blob) < len(serde.dumps_typed(messages[0])[1]) * 3 / 2
    assert serde.loads_typed((type_, blob)) == messages


def test_small_values_stay_as_they_were() -> None:
    serde = StrictSerializer()
    assert serde.dumps_typed({"a": 1})[0] == "msgpack"
    assert serde.loads_typed(serde.dumps_typed({"a": 1})) == {"a": 1}


def test_compression_is_no_way_around_the_refusals() -> None:
    serde = StrictSerializer()
    with pytest.raises(CheckpointRejected):
        serde.loads_typed(("pickle+zlib", zlib.compress(pickle.dumps({"a": 1}))))
    with pytest.raises(CheckpointRejected):
        serde.loads_typed(("zlib", zlib.compress(b"x")))
