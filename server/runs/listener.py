"""Postgres LISTEN/NOTIFY fan-in: wake-ups, completions and cancellations across processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

import psycopg

from server.core.types import CancelAction
from server.db import run_rows
from server.runs.executor import Executor
from server.runs.signals import (
    CANCEL_CHANNEL,
    DONE_CHANNEL,
    RUNS_CHANNEL,
    THREAD_RUNS_CHANNEL,
    Completions,
    ThreadRuns,
)

log = logging.getLogger("trellis.runs")


class Listener:
    """Holds one dedicated connection that LISTENs and dispatches notifications.

    A process listens only to what it acts on: wake-ups and cancellations when it has an
    executor, run completions when it has `completions` (it answers `wait` and `join`),
    new runs on threads when it has `thread_runs` (it serves thread streams).
    """

    def __init__(
        self,
        conninfo: str,
        *,
        completions: Completions | None,
        executor: Executor | None,
        thread_runs: ThreadRuns | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.completions = completions
        self.executor = executor
        self.thread_runs = thread_runs
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        """Start listening; returns once the first LISTEN is in place."""
        self._task = asyncio.create_task(self._run(), name="trellis-listener")
        await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as conn:
                    for channel in self._channels():
                        await run_rows.listen(conn, channel)
                    self.ready.set()
                    if self.completions is not None:
                        self.completions.resync()  # completions sent while we were away
                    if self.thread_runs is not None:
                        self.thread_runs.resync()  # runs created while we were away
                    if self.executor is not None:
                        self.executor.wake()  # catch up on anything sent while we were away
                    async for note in conn.notifies():
                        self._dispatch(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("listener connection lost; reconnecting")
                await asyncio.sleep(0.25)  # a restarted database accepts again within ~1 s

    def _channels(self) -> list[str]:
        channels = [DONE_CHANNEL] if self.completions is not None else []
        if self.thread_runs is not None:
            channels.append(THREAD_RUNS_CHANNEL)
        if self.executor is not None:
            channels += [RUNS_CHANNEL, CANCEL_CHANNEL]
        return channels

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == RUNS_CHANNEL and self.executor is not None:
            self.executor.wake()
        elif channel == DONE_CHANNEL and self.completions is not None:
            self.completions.done(payload)
        elif channel == THREAD_RUNS_CHANNEL and self.thread_runs is not None:
            self.thread_runs.created(payload)
        elif channel == CANCEL_CHANNEL and self.executor is not None:
            run_id, _, action = payload.partition(":")
            # Sent by `RunManager` (one of the actions it records), never by a client.
            self.executor.cancel(run_id, cast(CancelAction, action or "interrupt"))
