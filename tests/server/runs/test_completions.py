"""Completions hand a run's final state to the waiters of this process, and to nobody else."""

from __future__ import annotations

from server.runs.signals import Completions


async def test_a_waiter_gets_the_state_offered_before_the_end() -> None:
    completions = Completions()
    event = completions.event("r")
    completions.offer("r", "cp-2", {"messages": ["hi"]})
    completions.done("r")  # a NOTIFY or the executor; either way the state stays
    assert event.is_set()
    assert completions.final_state("r", "cp-2") == {"messages": ["hi"]}
    assert completions.final_state("r", "cp-1") is None  # not the checkpoint the run recorded
    completions.forget("r")
    assert completions.final_state("r", "cp-2") is None


def test_nothing_is_kept_for_a_run_nobody_waits_for() -> None:
    completions = Completions()
    completions.offer("r", "cp-2", {"messages": ["hi"]})
    assert completions.final_state("r", "cp-2") is None


def test_a_stateless_outcome_is_kept_for_waiters_only_until_they_forget() -> None:
    completions = Completions()
    completions.hand_over("nobody-waits", "success", {"a": 1})
    assert completions.outcome("nobody-waits") is None
    completions.event("r1")
    completions.hand_over("r1", "error", {"__error__": {"error": "E", "message": "m"}})
    assert completions.outcome("r1") == ("error", {"__error__": {"error": "E", "message": "m"}})
    completions.forget("r1")
    assert completions.outcome("r1") is None
