"""Completions hand a run's final state to the waiters of this process, and to nobody else."""

from __future__ import annotations

import asyncio

from server.runs.signals import Completions, first_set


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


async def test_a_resync_wakes_waiters_without_ending_the_run() -> None:
    """A `wait` whose run ended while the listener was away (its NOTIFY lost in a database
    restart) is woken by the listener's reconnection to ask the database again; streams'
    events stay unset (the run is not thereby over)."""
    completions = Completions()
    ended = completions.event("r")
    watched = completions.watch("r")
    missed = completions.missed()
    waiter = asyncio.create_task(first_set(ended, missed))
    await asyncio.sleep(0)
    assert not waiter.done()
    completions.resync()
    await asyncio.wait_for(waiter, 1.0)
    assert missed.is_set()
    assert not ended.is_set()
    assert not watched.is_set()
    assert not completions.missed().is_set()  # a fresh one for the next wait


async def test_first_set_waits_for_any_one_of_its_events() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    waiter = asyncio.create_task(first_set(first, second))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    second.set()
    await asyncio.wait_for(waiter, 1.0)
    assert not first.is_set()
