"""What one stream may cost: a reader that falls behind holds a bounded inbox and then reads
the stored stream in pages; late joiners read in pages; trimmed gaps are said; a Redis
outage does not keep the stream of a finished run open; idle streams ask the database
nothing (completion arrives as a signal)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio
from redis.asyncio import BlockingConnectionPool, Redis

from server.core.settings import Settings
from server.runs.events import END, RunEvent, end_data, parse_event_id
from server.runs.redis_events import INBOX_BYTES, PAGE, RedisEventBus, _Inbox
from server.runs.signals import Completions
from server.services import open_redis
from tests.server.runs.conftest import REDIS_URL
from tests.support.servers import free_port


@pytest.fixture
def client(redis_client: redis.asyncio.Redis) -> redis.asyncio.Redis:
    return redis_client  # this module's tests talk to Redis, not to the API


def bus(client: redis.asyncio.Redis, **kwargs: int) -> RedisEventBus:
    made = RedisEventBus(client, prefix=client.test_prefix, block_ms=200, **kwargs)  # type: ignore[attr-defined]
    client.test_buses.append(made)  # type: ignore[attr-defined]
    return made


async def settle(events: RedisEventBus) -> None:
    """Until the writer has appended everything queued."""
    for _ in range(500):
        if not events._backlog:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the writer did not flush its backlog")


def test_a_full_inbox_drops_what_it_holds_and_says_so() -> None:
    inbox = _Inbox(limit=10)
    inbox.put(RunEvent("1-0", "values", b"12345"))
    inbox.put(RunEvent("2-0", "values", b"12345"))
    assert inbox._size == 10
    inbox.put(RunEvent("3-0", "values", b"1"))  # past the bound
    assert list(inbox._items) == [None]
    assert inbox._size == 0
    inbox.put(RunEvent("4-0", "values", b"1"))  # closed: nothing more is kept
    assert list(inbox._items) == [None]


async def test_a_slow_local_reader_falls_back_to_paged_reads_and_misses_nothing(
    client: redis.asyncio.Redis,
) -> None:
    events = bus(client)
    run_id = str(uuid.uuid4())
    events.attach(run_id)
    stream = events.subscribe(run_id)
    first = asyncio.create_task(anext(stream))
    await events.publish(run_id, "values", b'"start"')
    assert (await asyncio.wait_for(first, 5)).data == b'"start"'
    # The reader stops reading while the run emits ~4x its inbox bound.
    data = b'"' + b"x" * 4094 + b'"'
    count = 4 * INBOX_BYTES // len(data)
    for _ in range(count):
        await events.publish(run_id, "values", data)
    await settle(events)
    inboxes = events._followers.get(run_id, set())
    assert all(inbox._size <= INBOX_BYTES for inbox in inboxes)
    assert all(list(inbox._items) == [None] for inbox in inboxes)  # it fell behind
    reads: list[int] = []
    real_read = events._read

    async def read(key: str, last: str) -> list[tuple[str, str, bytes]]:
        got = await real_read(key, last)
        reads.append(len(got))
        return got

    events._read = read  # type: ignore[method-assign]
    await events.end(run_id, "success")
    rest = [event async for event in stream]
    events.detach(run_id)
    assert [e.data for e in rest] == [data] * count + [end_data(run_id, "success")]
    ids = [parse_event_id(e.id) for e in rest]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert reads
    assert max(reads) <= PAGE


async def test_a_reader_left_behind_by_trimming_gets_a_resync_not_a_gap(
    client: redis.asyncio.Redis,
) -> None:
    events = bus(client, max_bytes=64 * 1024)
    run_id = str(uuid.uuid4())
    events.attach(run_id)
    stream = events.subscribe(run_id)
    first = asyncio.create_task(anext(stream))
    await events.publish(run_id, "values", b'"start"')
    start = await asyncio.wait_for(first, 5)
    data = b'"' + b"x" * 8190 + b'"'
    for _ in range(2 * INBOX_BYTES // len(data)):  # overflows the inbox and the stream
        await events.publish(run_id, "values", data)
    await settle(events)
    rest = [event async for event in stream]
    events.detach(run_id)
    assert len(rest) == 1
    assert rest[0].event == "error"
    assert orjson.loads(rest[0].data)["error"] == "ResyncRequired"
    assert rest[0].id == start.id  # where the reader stood


async def test_late_joiners_read_the_stored_stream_in_pages(client: redis.asyncio.Redis) -> None:
    worker, api = bus(client), bus(client)
    run_id = str(uuid.uuid4())
    count = 3 * PAGE + 7
    for i in range(count):
        await worker.publish(run_id, "values", b"%d" % i)
    await worker.end(run_id, "success")
    await settle(worker)
    asked: list[object] = []
    real_xrange = client.xrange

    async def xrange(*args: object, **kwargs: object) -> object:
        asked.append(kwargs.get("count"))
        return await real_xrange(*args, **kwargs)  # type: ignore[arg-type]

    client.xrange = xrange  # type: ignore[method-assign]
    try:
        received = await asyncio.wait_for(
            asyncio.gather(*(collect(api.subscribe(run_id)) for _ in range(3))), 10
        )
    finally:
        del client.xrange
    for got in received:
        assert [e.data for e in got] == [b"%d" % i for i in range(count)] + [
            end_data(run_id, "success")
        ]
    assert asked
    assert all(each == PAGE for each in asked)


async def collect(stream: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in stream]


async def test_a_finished_runs_stream_ends_during_a_redis_outage() -> None:
    # Redis is unreachable (nothing listens on the port): the run's end never reaches it.
    down: Redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    events = RedisEventBus(down, prefix=f"trellis-test-{uuid.uuid4().hex}", block_ms=200)
    asked: list[bool] = []
    over = asyncio.Event()

    async def finished() -> bool:
        asked.append(over.is_set())
        return over.is_set()

    run_id = str(uuid.uuid4())
    reader = asyncio.create_task(collect(events.subscribe(run_id, "5-0", finished)))
    try:
        await asyncio.sleep(1.0)
        assert not reader.done()  # not over: it waits for Redis
        assert asked  # yet it asks whether the run is over while Redis does not answer
        over.set()  # Postgres records the end (a signal says so)
        received = await asyncio.wait_for(reader, 5)
    finally:
        reader.cancel()
        await events.close()
        await down.aclose()
    assert received == [RunEvent("5-0", END, b"null")]  # ends where the reader stood


def test_completions_keep_a_watched_runs_signal_until_the_last_watcher_goes() -> None:
    completions = Completions()
    first = completions.watch("r")
    second = completions.watch("r")
    assert first is second
    waiting = completions.event("r")  # a `wait` call, which forgets it on its own
    completions.forget("r")
    completions.unwatch("r")
    completions.done("r")  # still watched once: the signal reaches the stream
    assert waiting.is_set()
    assert second.is_set()
    epoch = completions.epoch
    completions.resync()
    assert completions.epoch == epoch + 1
    completions.unwatch("r")
    assert not completions._watchers
    assert "r" not in completions._events


async def test_the_redis_pool_waits_instead_of_growing() -> None:
    settings = Settings(
        _env_file=None, redis_url=REDIS_URL, redis_max_connections=4, redis_pool_timeout_seconds=5
    )
    redis = await open_redis(settings)
    assert redis is not None
    try:
        pool = redis.connection_pool
        assert isinstance(pool, BlockingConnectionPool)
        # 20 commands that each hold a connection for 0.2 s: at most 4 are open at once.
        key = f"trellis-test-{uuid.uuid4().hex}"
        await asyncio.wait_for(
            asyncio.gather(*(redis.blpop([key], timeout=0.2) for _ in range(20))), 10
        )
        made = [*pool._get_free_connections(), *pool._get_in_use_connections()]
        assert 1 <= len(made) <= 4
    finally:
        await redis.aclose()
