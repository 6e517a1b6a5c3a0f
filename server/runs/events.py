"""EventBus: the per-run, replayable sequence of stream events.

Every event a run emits gets an id of the form `<ms>-<seq>` (Redis stream ids);
readers subscribe from the start or after a `Last-Event-ID` and follow live
until the run's end marker. `MemoryEventBus` (here) serves a single process without
Redis; `server.runs.redis_events.RedisEventBus` lets any API process stream a run
executed by any worker.

A reader whose cursor points before the retained window gets an explicit
`error` event (`ResyncRequired`) instead of a silent gap.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import orjson

from server.core.errors import InvalidRequest

END = "__end__"
"""The event that closes a run's stream once the run is over; its data is
`{"run_id", "status"}` (`null` when the run ended without saying). Readers get it last;
the SSE layer sends it as `end` only where settings ask for it."""


def end_data(run_id: str, status: str) -> bytes:
    """The data of a run's end event."""
    return orjson.dumps({"run_id": run_id, "status": status})


_ID = re.compile(r"^(\d{1,16})-(\d{1,16})$")


class RunEvent(NamedTuple):
    """One stream event: its id, SSE event name and JSON-encoded data."""

    id: str
    event: str
    data: bytes


class EventBus(Protocol):
    """Where runs publish their events and where streams read them."""

    async def publish(self, run_id: str, event: str, data: bytes) -> None: ...

    async def end(self, run_id: str, status: str, *, resumable: bool = False) -> None:
        """Close the run's stream with its end event. Its events then stay replayable for the
        retention period when the run was created `resumable` (`stream_resumable`), and
        otherwise only for a short grace, for readers still catching up."""

    async def forget(self, run_ids: Collection[str]) -> None:
        """Drop everything kept of these runs (their thread is deleted)."""

    async def listened(self, run_id: str) -> bool:
        """Whether anyone follows the run's events now (a run whose request only waits for
        its output publishes them only then: they are not kept for later readers)."""

    async def has_events(self, run_id: str) -> bool: ...

    async def newest(self, run_id: str) -> str | None:
        """The id of the run's newest retained event (None when none is): where a join with
        an unknown or malformed `Last-Event-ID` starts, as the official server's does."""

    def attach(self, run_id: str) -> None:
        """This process starts executing the run: its readers here may follow it from memory."""

    def detach(self, run_id: str) -> None:
        """This process stops executing the run (it ended, or went to another worker)."""

    def subscribe(
        self,
        run_id: str,
        after: str | None = None,
        finished: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[RunEvent]: ...

    async def close(self) -> None: ...


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    """A `Last-Event-ID` as `(ms, seq)`; malformed ids are a client error."""
    if value is None or value == "":
        return None
    match = _ID.match(value)
    if match is None:
        raise InvalidRequest(f"malformed Last-Event-ID {value[:64]!r}: expected '<ms>-<seq>'")
    return int(match.group(1)), int(match.group(2))


def resync_event(run_id: str, after: str) -> RunEvent:
    """The event a reader gets when its cursor fell out of the retained window."""
    message = (
        f"events of run {run_id} after {after} are no longer retained; "
        "read the thread state and rejoin without Last-Event-ID"
    )
    return RunEvent(after, "error", orjson.dumps({"error": "ResyncRequired", "message": message}))


@dataclass
class _Channel:
    events: list[RunEvent] = field(default_factory=list)
    ended_at: float | None = None
    expires_at: float | None = None
    trimmed: int = 0
    size: int = 0
    """Bytes of event data held."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryEventBus:
    """Events kept in this process: at most `max_events` and `max_bytes` per run, for
    `retention_seconds` after a resumable run ends (`grace_seconds` after any other)."""

    def __init__(
        self,
        retention_seconds: float = 3600.0,
        max_events: int = 100_000,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        grace_seconds: float = 10.0,
    ) -> None:
        self._channels: dict[str, _Channel] = {}
        self._retention = retention_seconds
        self._grace = grace_seconds
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._readers: dict[str, int] = {}

    def _channel(self, run_id: str) -> _Channel:
        channel = self._channels.get(run_id)
        if channel is None:
            channel = self._channels[run_id] = _Channel()
        return channel

    def _collect(self) -> None:
        now = time.monotonic()
        for run_id in [
            rid for rid, ch in self._channels.items() if ch.expires_at and ch.expires_at < now
        ]:
            del self._channels[run_id]

    async def publish(self, run_id: str, event: str, data: bytes) -> None:
        """Append an event and wake the readers; the oldest go past the bounds."""
        channel = self._channel(run_id)
        seq = channel.trimmed + len(channel.events) + 1
        channel.events.append(RunEvent(f"{seq}-0", event, data))
        channel.size += len(data)
        drop = 0
        while len(channel.events) - drop > 1 and (
            len(channel.events) - drop > self._max_events or channel.size > self._max_bytes
        ):
            channel.size -= len(channel.events[drop].data)
            drop += 1
        if drop:
            del channel.events[:drop]
            channel.trimmed += drop
        channel.changed.set()

    async def end(self, run_id: str, status: str, *, resumable: bool = False) -> None:
        """Close the run's stream with its end event; readers drain and stop."""
        await self.publish(run_id, END, end_data(run_id, status))
        channel = self._channel(run_id)
        channel.ended_at = time.monotonic()
        channel.expires_at = channel.ended_at + (self._retention if resumable else self._grace)
        channel.changed.set()
        self._collect()

    async def forget(self, run_ids: Collection[str]) -> None:
        """Drop the runs' events."""
        for run_id in run_ids:
            channel = self._channels.pop(run_id, None)
            if channel is not None:
                channel.ended_at = channel.ended_at or time.monotonic()
                channel.changed.set()  # its readers stop
        self._collect()

    async def listened(self, run_id: str) -> bool:
        return self._readers.get(run_id, 0) > 0

    def attach(self, run_id: str) -> None:
        """Nothing to do: every reader of this bus is in this process."""

    def detach(self, run_id: str) -> None:
        """Nothing to do: every reader of this bus is in this process."""

    async def has_events(self, run_id: str) -> bool:
        """Whether anything of the run is retained."""
        self._collect()
        channel = self._channels.get(run_id)
        return channel is not None and (bool(channel.events) or channel.ended_at is not None)

    async def newest(self, run_id: str) -> str | None:
        """The id of the run's newest retained event."""
        self._collect()
        channel = self._channels.get(run_id)
        return channel.events[-1].id if channel is not None and channel.events else None

    async def subscribe(
        self,
        run_id: str,
        after: str | None = None,
        finished: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Events after `after` (all when None), then live ones up to the end event.

        (`finished` is for buses that can lose the marker; this one cannot.)
        """
        cursor = parse_event_id(after)
        channel = self._channel(run_id)
        seq = cursor[0] if cursor else channel.trimmed  # no cursor: what is still retained
        if after is not None and seq < channel.trimmed:
            yield resync_event(run_id, after)
            return
        self._readers[run_id] = self._readers.get(run_id, 0) + 1
        try:
            while True:
                channel.changed.clear()
                while seq - channel.trimmed < len(channel.events):
                    if seq < channel.trimmed:  # this reader fell behind the retained window
                        yield resync_event(run_id, f"{seq}-0")
                        return
                    yield channel.events[seq - channel.trimmed]
                    seq += 1
                if channel.ended_at is not None:
                    return
                await channel.changed.wait()
        finally:
            if (left := self._readers.pop(run_id, 1) - 1) > 0:
                self._readers[run_id] = left

    async def close(self) -> None:
        """Nothing to release."""
