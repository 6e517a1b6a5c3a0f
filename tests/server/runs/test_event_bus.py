"""RedisEventBus against the machine's Redis: local readers follow a run from memory, and
go on with XREAD when the run leaves this process."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from server.runs.events import END, RunEvent, end_data, parse_event_id
from server.runs.redis_events import RedisEventBus


@pytest.fixture
def client(redis_client: redis.asyncio.Redis) -> redis.asyncio.Redis:
    return redis_client  # this module's tests talk to Redis, not to the API


def bus(client: redis.asyncio.Redis) -> RedisEventBus:
    """A bus like another process's, closed when the test ends."""
    made = RedisEventBus(client, prefix=client.test_prefix, block_ms=200)  # type: ignore[attr-defined]
    client.test_buses.append(made)  # type: ignore[attr-defined]
    return made


async def collect(stream: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in stream]


def no_xread(*_: object) -> None:
    raise AssertionError("a local reader of a run executing here must not poll Redis")


async def test_a_local_reader_follows_the_run_from_memory(client: redis.asyncio.Redis) -> None:
    events = bus(client)
    events._read = no_xread  # type: ignore[assignment,method-assign]
    run_id = str(uuid.uuid4())
    events.attach(run_id)
    await events.publish(run_id, "metadata", b'{"run_id": 1}')  # before the reader comes
    reader = asyncio.create_task(collect(events.subscribe(run_id)))
    await asyncio.sleep(0.05)
    for step in range(5):
        await events.publish(run_id, "values", b"%d" % step)
    await events.end(run_id, "success")
    received = await asyncio.wait_for(reader, 5)
    events.detach(run_id)
    assert [(e.event, e.data) for e in received] == [
        ("metadata", b'{"run_id": 1}'),
        *(("values", b"%d" % step) for step in range(5)),
        (END, end_data(run_id, "success")),
    ]
    ids = [parse_event_id(e.id) for e in received]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    # The same events as a reader in another process (it follows Redis).
    replay = await collect(bus(client).subscribe(run_id))
    assert replay == received


async def test_a_run_that_leaves_this_process_is_followed_in_redis(
    client: redis.asyncio.Redis,
) -> None:
    here, elsewhere = bus(client), bus(client)
    run_id = str(uuid.uuid4())
    here.attach(run_id)
    await here.publish(run_id, "values", b"1")
    reader = asyncio.create_task(collect(here.subscribe(run_id)))
    await asyncio.sleep(0.05)
    await here.publish(run_id, "values", b"2")
    await asyncio.sleep(0.05)
    here.detach(run_id)  # handed over (a graceful shutdown): another worker carries on
    await elsewhere.publish(run_id, "values", b"3")
    await elsewhere.end(run_id, "success")
    received = await asyncio.wait_for(reader, 5)
    assert [e.data for e in received] == [b"1", b"2", b"3", end_data(run_id, "success")]
    ids = [parse_event_id(e.id) for e in received]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_readers_after_the_end_replay_from_redis(client: redis.asyncio.Redis) -> None:
    events = bus(client)
    run_id = str(uuid.uuid4())
    events.attach(run_id)
    await events.publish(run_id, "values", b"1")
    await events.end(run_id, "success")
    await asyncio.sleep(0.1)  # the writer has appended both
    events.detach(run_id)
    received = await asyncio.wait_for(collect(events.subscribe(run_id)), 5)
    assert [(e.event, e.data) for e in received] == [
        ("values", b"1"),
        (END, end_data(run_id, "success")),
    ]


async def test_a_reader_elsewhere_follows_the_published_events(
    client: redis.asyncio.Redis,
) -> None:
    worker, api = bus(client), bus(client)
    api._read = no_xread  # type: ignore[assignment,method-assign]
    run_id = str(uuid.uuid4())
    worker.attach(run_id)
    await worker.publish(run_id, "metadata", b"{}")  # before the reader comes
    await asyncio.sleep(0.05)
    reader = asyncio.create_task(collect(api.subscribe(run_id)))
    await asyncio.sleep(0.05)
    for step in range(5):
        await worker.publish(run_id, "values", b"%d" % step)
    await worker.end(run_id, "success")
    received = await asyncio.wait_for(reader, 5)
    worker.detach(run_id)
    assert [e.data for e in received] == [
        b"{}",
        *(b"%d" % step for step in range(5)),
        end_data(run_id, "success"),
    ]
    assert received == await collect(bus(client).subscribe(run_id))
    # Read again at once: the channel is still subscribed, and the replay is the same.
    assert await asyncio.wait_for(collect(api.subscribe(run_id)), 5) == received


async def test_readers_poll_the_stream_when_the_feed_drops(client: redis.asyncio.Redis) -> None:
    worker, api = bus(client), bus(client)
    run_id = str(uuid.uuid4())
    worker.attach(run_id)
    reader = asyncio.create_task(collect(api.subscribe(run_id)))
    await worker.publish(run_id, "values", b"1")
    await asyncio.sleep(0.1)
    polled: list[str] = []
    real_read = api._read

    async def read(key: str, last: str) -> list[tuple[str, str, bytes]]:
        polled.append(last)
        return await real_read(key, last)

    api._read = read  # type: ignore[method-assign]
    feed = api._feed._conn
    assert feed is not None
    await feed.disconnect()  # the connection drops
    await asyncio.sleep(0.1)
    await worker.publish(run_id, "values", b"2")
    await worker.end(run_id, "success")
    received = await asyncio.wait_for(reader, 5)
    assert [e.data for e in received] == [b"1", b"2", end_data(run_id, "success")]
    assert polled  # the reader went on with XREAD, from where the feed left it
    ids = [parse_event_id(e.id) for e in received]
    assert ids == sorted(ids)


async def test_a_full_backlog_drops_its_oldest_events_and_keeps_the_rest_in_order(
    client: redis.asyncio.Redis,
) -> None:
    events = bus(client)
    events._backlog = deque(maxlen=3)
    gate = asyncio.Event()
    appended: list[bytes] = []

    async def slow_append(batch: list[tuple[str, str, bytes, int]]) -> list[bytes]:
        await gate.wait()  # Redis is slow: the backlog fills while this batch is in flight
        appended.extend(data for _, _, data, _ in batch)
        return [b"%d-0" % (len(appended) - len(batch) + i + 1) for i in range(len(batch))]

    events._append = slow_append  # type: ignore[method-assign]
    run_id = str(uuid.uuid4())
    for data in (b"a", b"b", b"c"):
        await events.publish(run_id, "values", data)
    await asyncio.sleep(0.01)  # the writer took a, b, c
    for data in (b"d", b"e"):
        await events.publish(run_id, "values", data)  # a and b fall out of the backlog
    gate.set()
    assert events._flusher is not None
    await asyncio.wait_for(events._flusher, 5)
    assert appended == [b"a", b"b", b"c", b"d", b"e"]  # what was in flight, then the rest once
    assert not events._backlog


async def test_readers_arriving_together_share_one_feed_connection(
    client: redis.asyncio.Redis,
) -> None:
    """The first readers of a process arrive at once (a burst of streams after a start):
    they must share the one pub/sub connection, every subscription confirmed on it."""
    api = bus(client)
    made: list[object] = []
    pool = client.connection_pool
    make_connection = pool.make_connection

    def counted() -> object:
        made.append(make_connection())  # type: ignore[no-untyped-call]
        return made[-1]

    pool.make_connection = counted  # type: ignore[method-assign]
    try:
        channels = [f"{client.test_prefix}:burst:{index}" for index in range(5)]  # type: ignore[attr-defined]
        watched = await asyncio.wait_for(
            asyncio.gather(*(api._feed.watch(channel) for channel in channels)), 3
        )
    finally:
        pool.make_connection = make_connection  # type: ignore[method-assign]
    assert watched == [True] * len(channels)
    assert len(made) == 1


async def test_newest_is_the_id_of_the_newest_event_redis_holds(
    client: redis.asyncio.Redis,
) -> None:
    events = bus(client)
    run_id = str(uuid.uuid4())
    assert await events.newest(run_id) is None
    await events.publish(run_id, "values", b"1")
    await events.end(run_id, "success")
    await asyncio.sleep(0.1)  # the writer has appended both
    received = await asyncio.wait_for(collect(events.subscribe(run_id)), 5)
    assert await events.newest(run_id) == received[-1].id
    assert received[-1].event == END
    # Subscribing after it replays nothing: the run is over.
    assert await asyncio.wait_for(collect(events.subscribe(run_id, received[-1].id)), 5) == []
