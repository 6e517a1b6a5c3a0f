"""The protocol's pieces without a server: request filters, and run events turned into
protocol events (numbering, ids, lifecycle, interrupts, namespaces)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from server.core.errors import InvalidRequest
from server.db.run_rows import ThreadRun
from server.runs.events import END, RunEvent
from server.runs.thread_protocol import EventFilter, ProtocolProjector
from server.runs.thread_stream import ThreadEvent


def _run(run_id: str = "r1") -> ThreadRun:
    return ThreadRun(run_id, "running", "echo", "a1", datetime.now(UTC))


def _feed(projector: ProtocolProjector, *events: tuple[str, object], run_id: str = "r1") -> list:
    out = []
    for n, (name, data) in enumerate(events):
        raw = orjson.dumps(data)
        out += projector.feed(ThreadEvent(_run(run_id), RunEvent(f"{n + 1}-0", name, raw)))
    return out


def test_filter_parses_like_the_official_server() -> None:
    with pytest.raises(InvalidRequest, match="channels is required"):
        EventFilter.parse({"channels": []})
    with pytest.raises(InvalidRequest, match="unsupported entries: debug"):
        EventFilter.parse({"channels": ["values", "debug"]})
    parsed = EventFilter.parse(
        {"channels": ["custom:progress"], "namespaces": [["a"], "bad"], "depth": True, "since": 3}
    )
    assert parsed.namespaces == [["a"]]
    assert parsed.depth is None  # `true` is no depth
    assert parsed.since == 3


def _event(method: str, namespace: list[str], seq: int = 1, data: object = None) -> dict:
    return {"seq": seq, "method": method, "params": {"namespace": namespace, "data": data}}


def test_filter_matches_channels_namespaces_depth_and_since() -> None:
    scoped = EventFilter(frozenset({"values", "input"}), namespaces=[["agent"]], depth=1)
    assert scoped.matches(_event("values", ["agent:7f"]))  # a task suffix still matches
    assert scoped.matches(_event("input.requested", ["agent", "tools"]))
    assert not scoped.matches(_event("values", ["agent", "tools", "deep"]))
    assert not scoped.matches(_event("values", ["other"]))
    assert not scoped.matches(_event("updates", ["agent"]))
    named = EventFilter(frozenset({"custom:progress"}), since=4)
    assert named.matches(_event("custom", [], 5, {"name": "progress", "payload": 1}))
    assert not named.matches(_event("custom", [], 5, {"payload": 1}))
    assert not named.matches(_event("custom", [], 4, {"name": "progress", "payload": 1}))


def test_projector_numbers_names_and_ends_runs() -> None:
    projector = ProtocolProjector()
    events = _feed(
        projector,
        ("metadata", {"run_id": "r1", "attempt": 1}),
        ("values", {"text": "a"}),
        ("updates|child:1", {"node": {"text": "b"}}),
        ("custom", {"progress": 1}),
        (END, {"run_id": "r1", "status": "success"}),
    )
    assert [(e["seq"], e["method"]) for e in events] == [
        (1, "lifecycle"),
        (2, "values"),
        (3, "updates"),
        (4, "custom"),
        (5, "lifecycle"),
    ]
    assert events[0]["event_id"] == "synth:r1:lc||running"
    assert events[1]["event_id"] == "r1:2-0"
    assert events[2]["params"]["namespace"] == ["child:1"]
    assert events[2]["params"]["node"] == "node"
    assert events[3]["params"]["data"] == {"payload": {"progress": 1}}
    assert events[4]["params"]["data"] == {"event": "completed", "graph_name": "echo"}
    # The next run carries the numbering on.
    assert _feed(projector, ("metadata", {}), run_id="r2")[0]["seq"] == 6


def test_projector_reports_interrupts_and_failures() -> None:
    pending = {"__interrupt__": [{"id": "i1", "value": {"q": "?"}}], "text": "a"}
    events = _feed(
        ProtocolProjector(),
        ("values", pending),
        (END, {"run_id": "r1", "status": "success"}),
    )
    assert [e["method"] for e in events] == ["lifecycle", "input.requested", "lifecycle", "values"]
    assert events[1]["params"]["data"] == {"interrupt_id": "i1", "payload": {"q": "?"}}
    assert events[2]["params"]["data"]["event"] == "interrupted"
    assert events[3]["params"]["data"] == {"text": "a"}  # no `__interrupt__` left in values

    failed = _feed(
        ProtocolProjector(),
        ("error", {"error": "ValueError", "message": "boom"}),
        (END, {"run_id": "r1", "status": "error"}),
    )
    assert [e["params"]["data"]["event"] for e in failed] == ["running", "failed"]
    assert failed[1]["params"]["data"]["error"] == "boom"
