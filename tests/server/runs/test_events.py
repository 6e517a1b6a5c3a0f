"""Event ids and the in-memory event bus: replay after a cursor, live following, resync."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from server.core.errors import InvalidRequest
from server.runs.events import END, MemoryEventBus, RunEvent, end_data, parse_event_id


def test_event_ids_parse_as_ms_and_seq() -> None:
    assert parse_event_id(None) is None
    assert parse_event_id("") is None
    assert parse_event_id("1700000000000-7") == (1700000000000, 7)


@pytest.mark.parametrize(
    "malformed", ["abc", "1", "1-", "-1", "1-2-3", " 1-2", "1-2 ", "1.0-2", "12345678901234567-0"]
)
def test_malformed_event_ids_are_a_client_error(malformed: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_event_id(malformed)
    assert raised.value.status == 422
    assert "<ms>-<seq>" in raised.value.detail


def test_a_malformed_id_is_quoted_only_in_part() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_event_id("x" * 500)
    assert "x" * 64 in raised.value.detail
    assert "x" * 65 not in raised.value.detail


async def collect(bus: MemoryEventBus, run_id: str, after: str | None = None) -> list[RunEvent]:
    return [event async for event in bus.subscribe(run_id, after)]


async def test_a_reader_replays_everything_then_stops_at_the_end_event() -> None:
    bus = MemoryEventBus()
    assert not await bus.has_events("r")
    await bus.publish("r", "metadata", b'{"run_id": "r"}')
    await bus.publish("r", "values", b"1")
    assert await bus.has_events("r")
    await bus.end("r", "success")

    events = await collect(bus, "r")
    assert [(e.id, e.event) for e in events] == [
        ("1-0", "metadata"),
        ("2-0", "values"),
        ("3-0", END),
    ]
    assert orjson.loads(events[-1].data) == {"run_id": "r", "status": "success"}
    assert events[-1].data == end_data("r", "success")


async def test_a_reader_with_a_cursor_gets_only_what_follows_it() -> None:
    bus = MemoryEventBus()
    for n in range(3):
        await bus.publish("r", "values", str(n).encode())
    await bus.end("r", "success")
    assert [e.data for e in await collect(bus, "r", after="2-0")] == [
        b"2",
        end_data("r", "success"),
    ]
    assert await collect(bus, "r", after="4-0") == []  # at the end event: nothing to replay


async def test_a_reader_follows_events_published_after_it_subscribed() -> None:
    bus = MemoryEventBus()
    await bus.publish("r", "values", b"before")
    reader = asyncio.ensure_future(collect(bus, "r"))
    await asyncio.sleep(0)
    await bus.publish("r", "values", b"after")
    assert not reader.done()
    await bus.end("r", "interrupted")
    events = await asyncio.wait_for(reader, 1)
    assert [e.data for e in events[:2]] == [b"before", b"after"]
    assert events[-1].event == END


async def test_a_cursor_before_the_retained_window_gets_a_resync_error() -> None:
    bus = MemoryEventBus(max_events=2)
    for n in range(4):
        await bus.publish("r", "values", str(n).encode())
    # Events 1 and 2 were dropped: a reader after 1 would miss 2.
    (event,) = await collect_until_idle(bus, "r", after="1-0")
    assert (event.id, event.event) == ("1-0", "error")
    error = orjson.loads(event.data)
    assert error["error"] == "ResyncRequired"
    assert "after 1-0" in error["message"]
    # Right at the window's edge nothing is missing.
    assert [e.data for e in await collect_until_idle(bus, "r", after="2-0")] == [b"2", b"3"]


async def collect_until_idle(bus: MemoryEventBus, run_id: str, after: str | None) -> list[RunEvent]:
    """What a reader gets before it would wait for more (the run is still going)."""
    out: list[RunEvent] = []

    async def read() -> None:
        async for event in bus.subscribe(run_id, after):
            out.append(event)

    task = asyncio.ensure_future(read())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return out


async def test_ended_runs_are_forgotten_after_their_retention() -> None:
    bus = MemoryEventBus(retention_seconds=0.05)
    await bus.publish("old", "values", b"1")
    await bus.end("old", "success", resumable=True)
    assert await bus.has_events("old")
    await asyncio.sleep(0.1)
    await bus.end("new", "success", resumable=True)
    assert not await bus.has_events("old")
    assert await bus.has_events("new")


async def test_runs_not_resumable_keep_their_events_only_for_the_grace() -> None:
    bus = MemoryEventBus(retention_seconds=60, grace_seconds=0.05)
    await bus.publish("plain", "values", b"1")
    await bus.end("plain", "success")
    await bus.publish("resumable", "values", b"1")
    await bus.end("resumable", "success", resumable=True)
    assert [e.event for e in await collect(bus, "plain")] == ["values", END]
    await asyncio.sleep(0.1)
    assert not await bus.has_events("plain")
    assert await bus.has_events("resumable")


async def test_a_run_keeps_at_most_max_bytes_of_events() -> None:
    bus = MemoryEventBus(max_bytes=1000)
    for n in range(10):
        await bus.publish("r", "values", bytes([65 + n]) * 300)
    await bus.end("r", "success")
    kept = await collect(bus, "r")
    assert sum(len(e.data) for e in kept) <= 1000
    assert [e.data[:1] for e in kept[:-1]] == [b"H", b"I", b"J"]  # the newest
    assert kept[-1].event == END


async def test_forgotten_runs_keep_nothing() -> None:
    bus = MemoryEventBus()
    await bus.publish("r", "values", b"1")
    await bus.end("r", "success", resumable=True)
    await bus.forget(["r"])
    assert not await bus.has_events("r")


async def test_a_reader_from_the_start_of_a_trimmed_stream_gets_the_retained_events() -> None:
    bus = MemoryEventBus(max_events=2)
    for n in range(4):
        await bus.publish("r", "values", str(n).encode())
    await bus.end("r", "success")
    assert [e.id for e in await collect(bus, "r")] == ["4-0", "5-0"]


async def test_a_reader_left_behind_by_trimming_gets_a_resync_error() -> None:
    bus = MemoryEventBus(max_events=2)
    await bus.publish("r", "values", b"0")
    reader = bus.subscribe("r")
    first = await anext(reader)
    assert first.id == "1-0"
    for n in range(1, 5):  # trims the events this reader has not read yet
        await bus.publish("r", "values", str(n).encode())
    behind = await anext(reader)
    assert behind.event == "error"
    assert behind.id == "1-0"
    assert b"ResyncRequired" in behind.data


async def test_newest_is_the_id_of_the_newest_retained_event() -> None:
    bus = MemoryEventBus(max_events=2)
    assert await bus.newest("r") is None
    await bus.publish("r", "values", b"1")
    assert await bus.newest("r") == "1-0"
    await bus.publish("r", "values", b"2")
    await bus.publish("r", "values", b"3")  # the first is trimmed; the newest stays
    assert await bus.newest("r") == "3-0"
    await bus.end("r", "success")
    assert await bus.newest("r") == "4-0"
    await bus.forget(["r"])
    assert await bus.newest("r") is None
