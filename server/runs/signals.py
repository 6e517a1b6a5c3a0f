"""Signals between run processes: the Postgres NOTIFY channels, and in-process completions.

A run's creation wakes executors (`RUNS_CHANNEL`), its end wakes whoever waits for it
(`DONE_CHANNEL`), a cancellation reaches the process executing it (`CANCEL_CHANNEL`,
payload `<run_id>:<action>`), a run created on a thread reaches the streams following
that thread (`THREAD_RUNS_CHANNEL`, payload the thread id). `Listener` turns these into
calls on `Executor`, `Completions` and `ThreadRuns`; a process signals itself directly,
without a round trip.
"""

from __future__ import annotations

import asyncio

from server.db.run_rows import THREAD_RUNS_CHANNEL

__all__ = [
    "CANCEL_CHANNEL",
    "DONE_CHANNEL",
    "RUNS_CHANNEL",
    "THREAD_RUNS_CHANNEL",
    "Completions",
    "ThreadRuns",
    "first_set",
]

# Migration 0004's `trellis_finish_run` names the first two too.
RUNS_CHANNEL = "trellis_runs"
DONE_CHANNEL = "trellis_run_done"
CANCEL_CHANNEL = "trellis_run_cancel"


class Completions:
    """In-process signals that a run ended, fed locally and by Postgres NOTIFY."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._waited: set[str] = set()
        """Runs someone here waits for (until they `forget` them)."""
        self._states: dict[str, tuple[str, object]] = {}
        """Final states handed over to this process's waiters: checkpoint id, values."""
        self._outcomes: dict[str, tuple[str, object]] = {}
        """Outcomes of runs whose record goes with their temporary thread: status, output."""
        self._watchers: dict[str, int] = {}
        """Streams here following each run (until they `unwatch` it)."""
        self.epoch = 0
        """Bumped whenever signals may have been missed (the listener (re)connected): a
        watcher that last asked the database in an older epoch asks it again."""
        self._missed = asyncio.Event()
        """Set (and replaced) at each resync: wakes waiters so they ask the database again."""

    def resync(self) -> None:
        """Signals may have been missed (the listener was away): watchers ask again, and
        waiters are woken to (a run that ended meanwhile would keep them waiting)."""
        self.epoch += 1
        self._missed.set()
        self._missed = asyncio.Event()

    def missed(self) -> asyncio.Event:
        """An event set once signals may have been missed after this call (take it before
        asking the database, then wait on it beside the run's own event)."""
        return self._missed

    def watch(self, run_id: str) -> asyncio.Event:
        """The event set when `run_id` ends, for a stream following it (create before
        checking the database); any number of streams may watch the same run."""
        self._watchers[run_id] = self._watchers.get(run_id, 0) + 1
        return self._events.setdefault(run_id, asyncio.Event())

    def unwatch(self, run_id: str) -> None:
        """One stream of `run_id` fewer."""
        left = self._watchers.get(run_id, 0) - 1
        if left > 0:
            self._watchers[run_id] = left
            return
        self._watchers.pop(run_id, None)
        if run_id not in self._waited:
            event = self._events.get(run_id)
            if event is not None and not event.is_set():
                self._events.pop(run_id, None)

    def event(self, run_id: str) -> asyncio.Event:
        """The event set when `run_id` ends (create before checking the database)."""
        self._waited.add(run_id)
        return self._events.setdefault(run_id, asyncio.Event())

    def offer(self, run_id: str, checkpoint_id: str, values: object) -> None:
        """The run's final state, as the executor holds it, for waiters here (before its end
        is recorded: the NOTIFY of it may wake them first); spares them reading it back."""
        if run_id in self._waited:
            self._states[run_id] = (checkpoint_id, values)

    def hand_over(self, run_id: str, status: str, output: object) -> None:
        """A stateless run's outcome for waiters here: its record goes with its temporary
        thread right after it ends, possibly before they read it."""
        if run_id in self._waited:
            self._outcomes[run_id] = (status, output)

    def outcome(self, run_id: str) -> tuple[str, object] | None:
        """What `hand_over` kept for `run_id`."""
        return self._outcomes.get(run_id)

    def done(self, run_id: str) -> None:
        """Signal every waiter of `run_id`."""
        event = self._events.pop(run_id, None)
        if event is not None:
            event.set()

    def final_state(self, run_id: str, checkpoint_id: str) -> object | None:
        """The values handed over with the run's end, if they are those of `checkpoint_id`."""
        state = self._states.get(run_id)
        return state[1] if state is not None and state[0] == checkpoint_id else None

    def forget(self, run_id: str) -> None:
        """Drop a waiter's event and what was handed over for it, once nobody waits."""
        self._waited.discard(run_id)
        self._states.pop(run_id, None)
        self._outcomes.pop(run_id, None)
        event = self._events.get(run_id)
        if event is not None and not event.is_set() and run_id not in self._watchers:
            self._events.pop(run_id, None)


class ThreadRuns:
    """In-process signals that a thread has a new run, fed locally and by Postgres NOTIFY
    (`THREAD_RUNS_CHANNEL`): what a thread's stream waits on between its runs."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}

    def watch(self, thread_id: str) -> asyncio.Event:
        """An event set whenever a run is created on the thread (clear it, then look)."""
        event = asyncio.Event()
        self._watchers.setdefault(thread_id, set()).add(event)
        return event

    def unwatch(self, thread_id: str, event: asyncio.Event) -> None:
        """Stop signalling `event`."""
        group = self._watchers.get(thread_id)
        if group is not None:
            group.discard(event)
            if not group:
                del self._watchers[thread_id]

    def created(self, thread_id: str) -> None:
        """A run was created on the thread."""
        for event in self._watchers.get(thread_id, ()):
            event.set()

    def resync(self) -> None:
        """Signals may have been missed (the listener was away): every follower looks again."""
        for group in self._watchers.values():
            for event in group:
                event.set()


async def first_set(*events: asyncio.Event) -> None:
    """Wait until one of `events` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in waits:
            pending.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
