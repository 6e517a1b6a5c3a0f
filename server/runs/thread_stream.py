"""A thread's stream: the events of every run on a thread, one run after the other.

The event bus keys events by run (`server.runs.events`); a thread's stream is the
runs of the thread in creation order, each followed to its end marker through the
bus. Between runs it waits for the signal that the thread has a new one (created in
this process, or NOTIFYed by whichever process created it: `ThreadRuns`), and looks
at the runs table only then, or every `POLL_SECONDS` should a signal be lost. Both
work across API processes and workers, so any process can follow any thread.

`follow_thread` is what `GET /threads/{id}/stream` and the protocol event streams
(`server.runs.thread_protocol`) read.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import NamedTuple

from server.core.errors import NotFound
from server.core.ids import require_uuid
from server.db import run_rows
from server.db.run_rows import ThreadRun
from server.runs.events import RunEvent, parse_event_id
from server.runs.manager import TERMINAL, RunManager

__all__ = ["ThreadEvent", "ThreadRun", "follow_thread", "thread_exists"]

POLL_SECONDS = 30.0
"""How often a follower with nothing to read looks for the thread's next run without being
told of one (a fallback: new runs are signalled)."""


class ThreadEvent(NamedTuple):
    """One event of one run of the thread."""

    run: ThreadRun
    event: RunEvent


async def thread_exists(runs: RunManager, owner: str, thread_id: str) -> bool:
    """Whether `owner` has the thread (another owner's thread does not exist for them)."""
    tid = _thread_uuid(thread_id)
    async with runs.pool.connection() as conn:
        return (
            await run_rows.thread_runs_after(conn, owner=owner, thread_id=tid, after=None, limit=1)
            is not None
        )


def _thread_uuid(thread_id: str) -> uuid.UUID:
    return require_uuid(thread_id, "thread")


async def follow_thread(
    runs: RunManager,
    owner: str,
    thread_id: str,
    *,
    history: bool,
    after: str | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> AsyncIterator[ThreadEvent]:
    """The events of the thread's runs, in order, until the thread is gone (or the reader
    stops reading: the stream has no end of its own).

    `history`: start with the thread's first run whose events are still retained; else
    with the runs active now, and follow those created later. `after` (an event id, as
    `Last-Event-ID`): skip every event up to and including that one; a cursor no retained
    run holds yields the bus's resync error once, then the events of later runs.
    Raises `NotFound` when the owner has no such thread.
    """
    tid = _thread_uuid(thread_id)
    if after is not None:
        parse_event_id(after)
        history = True
    signal = runs.thread_runs.watch(str(tid))
    try:
        async for item in _follow(runs, owner, tid, signal, history, after, poll_seconds):
            yield item
    finally:
        runs.thread_runs.unwatch(str(tid), signal)


async def _follow(
    runs: RunManager,
    owner: str,
    tid: uuid.UUID,
    signal: asyncio.Event,
    history: bool,
    after: str | None,
    poll_seconds: float,
) -> AsyncIterator[ThreadEvent]:
    thread_id = str(tid)
    cursor: tuple[datetime, str] | None = None
    skipping = after is not None
    first = True
    while True:
        signal.clear()  # before looking: a run created from now on sets it again
        # Shielded: a reader that goes away mid-query leaves the pooled connection clean.
        found = await asyncio.shield(_runs_after(runs, owner, tid, cursor))
        if found is None:
            if first:
                raise NotFound(f"thread {thread_id!r} not found")
            return
        if first and not history:
            found = [run for run in found if run.status not in TERMINAL]
        if first and skipping and not found:
            skipping = False
        for position, run in enumerate(found):
            cursor = (run.created_at, run.run_id)
            async for event in runs.stream(run.run_id):
                if skipping:
                    skipping = event.id != after
                    continue
                yield ThreadEvent(run, event)
            if skipping and first and position == len(found) - 1:
                # The cursor was in none of the retained runs: say so, then go on live.
                skipping = False
                yield ThreadEvent(run, RunEvent(after or "", "error", _resync(thread_id)))
        first = False
        if not found:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), poll_seconds)


async def _runs_after(
    runs: RunManager, owner: str, tid: uuid.UUID, cursor: tuple[datetime, str] | None
) -> list[ThreadRun] | None:
    async with runs.pool.connection() as conn:
        return await run_rows.thread_runs_after(conn, owner=owner, thread_id=tid, after=cursor)


def _resync(thread_id: str) -> bytes:
    return (
        b'{"error":"ResyncRequired","message":"the events of thread '
        + thread_id.encode()
        + b' after Last-Event-ID are no longer retained; read the thread state"}'
    )
