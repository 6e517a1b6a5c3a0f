"""RunLimits: the operator's ceilings on caller-set run knobs, refused at creation (422)."""

from __future__ import annotations

import httpx
import pytest

from server.core.errors import InvalidRequest
from server.runs.run_limits import RunLimits

LIMITS = RunLimits(max_recursion_limit=50, max_revisions=3, timeout_seconds=60)


@pytest.mark.parametrize(
    ("config", "context", "field"),
    [
        ({"recursion_limit": 100_000}, None, "config.recursion_limit"),
        ({"recursion_limit": 0}, None, "config.recursion_limit"),
        ({"recursion_limit": "25"}, None, "config.recursion_limit"),
        ({"recursion_limit": True}, None, "config.recursion_limit"),
        (None, {"max_revisions": 4}, "context.max_revisions"),
        (None, {"max_revisions": -1}, "context.max_revisions"),
        (None, {"confidence_threshold": 1.01}, "context.confidence_threshold"),
        (None, {"confidence_threshold": -0.1}, "context.confidence_threshold"),
        ({"configurable": {"max_revisions": 99}}, None, "config.configurable.max_revisions"),
        (
            {"configurable": {"confidence_threshold": 2}},
            None,
            "config.configurable.confidence_threshold",
        ),
        (
            {"configurable": {"run_timeout_seconds": 61}},
            None,
            "config.configurable.run_timeout_seconds",
        ),
        (
            {"configurable": {"run_timeout_seconds": 0}},
            None,
            "config.configurable.run_timeout_seconds",
        ),
    ],
)
def test_out_of_bounds_knobs_are_refused_by_name(
    config: dict[str, object] | None, context: dict[str, object] | None, field: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        LIMITS.check(config, context)
    assert refused.value.detail.startswith(field + " must be")


def test_knobs_within_bounds_pass() -> None:
    LIMITS.check(
        {"recursion_limit": 50, "configurable": {"run_timeout_seconds": 60, "max_revisions": 0}},
        {"max_revisions": 3, "confidence_threshold": 1, "top_k": 4},
    )
    LIMITS.check(None, None)


def test_executors_clamp_what_was_stored_before_a_ceiling_was_lowered() -> None:
    assert LIMITS.clamp({"recursion_limit": 100_000})["recursion_limit"] == 50
    assert LIMITS.clamp({"recursion_limit": 10})["recursion_limit"] == 10
    assert "recursion_limit" not in LIMITS.clamp({})
    clamped = LIMITS.clamp_context({"max_revisions": 100, "confidence_threshold": 1.01, "x": 1})
    assert clamped == {"max_revisions": 3, "confidence_threshold": 1.0, "x": 1}


def test_a_run_timeout_is_the_ceiling_unless_lower_is_asked() -> None:
    assert LIMITS.timeout_for({}) == 60
    assert LIMITS.timeout_for({"configurable": {"run_timeout_seconds": 5}}) == 5
    assert LIMITS.timeout_for({"configurable": {"run_timeout_seconds": 600}}) == 60


async def test_runs_and_assistants_asking_too_much_are_refused_with_422(
    http: httpx.AsyncClient,
) -> None:
    thread = (await http.post("/threads", json={})).json()
    runs = f"/threads/{thread['thread_id']}/runs"
    asks: list[tuple[dict[str, object], str]] = [
        ({"config": {"recursion_limit": 100_000}}, "config.recursion_limit"),
        ({"context": {"confidence_threshold": 1.01}}, "context.confidence_threshold"),
        ({"context": {"max_revisions": 1000}}, "context.max_revisions"),
    ]
    for ask, field in asks:
        for path in (runs, f"{runs}/wait", "/runs", "/runs/wait"):
            refused = await http.post(path, json={"assistant_id": "echo", **ask})
            assert refused.status_code == 422, (path, refused.text)
            assert refused.json()["detail"].startswith(field), refused.json()
        batch = await http.post("/runs/batch", json=[{"assistant_id": "echo", **ask}])
        assert batch.status_code == 422
        created = await http.post("/assistants", json={"graph_id": "echo", **ask})
        assert created.status_code == 422
        assert created.json()["detail"].startswith(field)
    listed = (await http.get(runs)).json()
    assert listed == []  # nothing was enqueued
    fine = await http.post(
        f"{runs}/wait",
        json={
            "assistant_id": "echo",
            "input": {"text": "hi"},
            "config": {"recursion_limit": 100},
            "context": {"max_revisions": 2, "confidence_threshold": 0.9},
        },
    )
    assert fine.status_code == 200
    assert fine.json()["text"].startswith("hi")
