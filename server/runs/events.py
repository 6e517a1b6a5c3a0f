"""EventBus: the per-run, replayable sequence of stream events.

Every event a run emits gets an id; readers subscribe from the start or after
a `Last-Event-ID` and follow live until the run's end marker. This module holds
the in-process implementation used by a single Trellis process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from server.errors import InvalidRequest


class RunEvent(NamedTuple):
    """One stream event: its id, SSE event name and JSON-encoded data."""

    id: str
    event: str
    data: bytes


class EventBus(Protocol):
    """Where runs publish their events and where streams read them."""

    async def publish(self, run_id: str, event: str, data: bytes) -> str: ...

    async def end(self, run_id: str) -> None: ...

    def subscribe(self, run_id: str, after: str | None = None) -> AsyncIterator[RunEvent]: ...

    async def is_ended(self, run_id: str) -> bool: ...


def parse_event_id(value: str | None) -> int | None:
    """A `Last-Event-ID` as a sequence number; malformed ids are a client error."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise InvalidRequest(f"malformed Last-Event-ID {value[:64]!r}: expected a decimal id")
    return int(value)


@dataclass
class _Channel:
    events: list[RunEvent] = field(default_factory=list)
    ended_at: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryEventBus:
    """Events kept in this process, for `retention_seconds` after a run ends."""

    def __init__(self, retention_seconds: float = 600.0, max_events: int = 100_000) -> None:
        self._channels: dict[str, _Channel] = {}
        self._retention = retention_seconds
        self._max_events = max_events

    def _channel(self, run_id: str) -> _Channel:
        channel = self._channels.get(run_id)
        if channel is None:
            channel = self._channels[run_id] = _Channel()
        return channel

    def _collect(self) -> None:
        cutoff = time.monotonic() - self._retention
        for run_id in [
            rid for rid, ch in self._channels.items() if ch.ended_at and ch.ended_at < cutoff
        ]:
            del self._channels[run_id]

    async def publish(self, run_id: str, event: str, data: bytes) -> str:
        """Append an event and wake the readers."""
        channel = self._channel(run_id)
        event_id = str(len(channel.events))
        if len(channel.events) < self._max_events:
            channel.events.append(RunEvent(event_id, event, data))
        channel.changed.set()
        return event_id

    async def end(self, run_id: str) -> None:
        """Mark the run's stream complete; readers drain and stop."""
        channel = self._channel(run_id)
        channel.ended_at = time.monotonic()
        channel.changed.set()
        self._collect()

    async def is_ended(self, run_id: str) -> bool:
        """Whether the run's end marker was published (and is still retained)."""
        channel = self._channels.get(run_id)
        return channel is not None and channel.ended_at is not None

    async def subscribe(self, run_id: str, after: str | None = None) -> AsyncIterator[RunEvent]:
        """Events after `after` (all when None), then live ones until the end marker."""
        position = 0 if after is None else (parse_event_id(after) or 0) + 1
        channel = self._channel(run_id)
        while True:
            channel.changed.clear()
            while position < len(channel.events):
                yield channel.events[position]
                position += 1
            if channel.ended_at is not None:
                return
            await channel.changed.wait()
