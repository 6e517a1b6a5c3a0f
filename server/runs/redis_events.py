"""RedisEventBus: run events in Redis Streams, so any process can stream any run.

Each run's events are a stream (`XADD ... MAXLEN ~`, a TTL once the run ends), appended
and published in one Lua call (`_APPEND`): readers in the executing process get events
from the writer itself, readers elsewhere from their process's pub/sub feed (`_LiveFeed`),
and any reader falls back to `XREAD` when its source goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from server.core.errors import Unavailable
from server.runs.events import END, RunEvent, end_data, parse_event_id, resync_event

log = logging.getLogger("trellis.events")

_APPEND = """
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2], 'd', ARGV[3])
local size = redis.call('INCRBY', KEYS[2], #ARGV[3])
local limit = tonumber(ARGV[5])
while size > limit or redis.call('XLEN', KEYS[1]) > tonumber(ARGV[1]) do
    local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
    if first == nil or first[1] == id then break end
    redis.call('XDEL', KEYS[1], first[1])
    size = redis.call('DECRBY', KEYS[2], #first[2][4])
end
if ARGV[4] ~= '0' then
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', KEYS[1], id .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return id
"""
"""Append an event to a run's stream and publish it (with its id) on the channel of the
same name, atomically: readers following the channel miss nothing the stream holds. The
oldest events go while the stream holds more than ARGV[1] events or ARGV[5] bytes of data
(counted in KEYS[2]); the end event (ARGV[4] > 0) starts both keys' expiry."""


LISTENERS_TTL = 0.25
"""Seconds a run's subscriber count (`PUBSUB NUMSUB`) is trusted."""

_Entry = tuple[bytes | str, dict[bytes, bytes]]
"""A stream entry: its id and its fields (`e`: the event name, `d`: its data)."""

_StreamInfo = dict[str | bytes, _Entry | None]
"""What `_cursor` reads of `XINFO STREAM`: its `first-entry` and `last-entry`."""

PAGE = 100
"""Entries read from a stored stream per request: a reader catching up (a late joiner, a
slow reader) holds at most one page of them at a time."""

INBOX_BYTES = 256 * 1024
"""Event data one reader may have waiting in memory; past it the reader's queued events
are dropped and it reads the stored stream from its last id instead, a page at a time."""


class _Inbox:
    """A reader's live events, bounded in bytes. `None` tells the reader to go on with the
    stored stream (its source went away, or it fell behind and its events were dropped)."""

    def __init__(self, limit: int = INBOX_BYTES) -> None:
        self._items: deque[RunEvent | None] = deque()
        self._size = 0
        self._limit = limit
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, item: RunEvent | None) -> None:
        """Queue an event; a full inbox drops what it holds and closes with `None`."""
        if self._closed:
            return
        if item is None or self._size + len(item.data) > self._limit:
            self._items.clear()
            self._size = 0
            self._items.append(None)
            self._closed = True
        else:
            self._items.append(item)
            self._size += len(item.data)
        self._ready.set()

    async def get(self) -> RunEvent | None:
        """The next event, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if item is not None:
            self._size -= len(item.data)
        return item


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisEventBus:
    """Per-run Redis Streams: `XADD` with `MAXLEN ~`, a TTL after the end, published live.

    Publishing never waits for Redis and never fails a run: events queue in a bounded
    local backlog that one writer task appends in order, a batch per round trip; while
    Redis is unreachable they wait there and are flushed when it is back.

    The writer appends and publishes each event in one Lua call, so no reader polls
    Redis per event: a reader in the process executing the run (the usual stream of a
    run just created) gets every event from the writer, with the id Redis gave it;
    readers elsewhere get them from their process's pub/sub feed. Both read what the
    stream already holds first, and go on with `XREAD` if their source goes away.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        retention_seconds: int = 3600,
        max_events: int = 100_000,
        max_bytes: int = 16 * 1024 * 1024,
        grace_seconds: int = 10,
        block_ms: int = 5_000,
        prefix: str = "trellis",
    ) -> None:
        self.redis = redis
        self.retention = retention_seconds
        """How long a resumable run's events stay after its end."""
        self.grace = grace_seconds
        """How long any other run's events stay after its end (for readers catching up)."""
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.block_ms = block_ms
        self.prefix = prefix
        self._backlog: deque[tuple[str, str, bytes, int]] = deque(maxlen=1_000_000)
        """Events to append: run, event, data, and the stream's expiry (0: none yet)."""
        self._overflowed = False
        self._flusher: asyncio.Task[None] | None = None
        self._executing: set[str] = set()
        """Runs executing in this process whose end marker has not been written yet."""
        self._followers: dict[str, set[_Inbox]] = {}
        """Local readers of those runs; `None` tells one to go on with `XREAD`."""
        self._watchers: dict[str, set[_Inbox]] = {}
        """Readers of runs executing elsewhere, by stream key, fed by the pub/sub feed."""
        self._feed = _LiveFeed(redis, self._published, self._feed_lost)
        self._writer: Connection | None = None
        self._listeners: dict[str, tuple[float, bool]] = {}
        """Whether a run's channel had subscribers anywhere, and when Redis said so."""

    def key(self, run_id: str) -> str:
        """The stream key of a run."""
        return f"{self.prefix}:run:{run_id}:events"

    def size_key(self, run_id: str) -> str:
        """The key counting the bytes of event data the run's stream holds."""
        return f"{self.prefix}:run:{run_id}:bytes"

    async def publish(self, run_id: str, event: str, data: bytes) -> None:
        """Queue an event for the run's stream; one writer task appends queued events in order,
        a batch per round trip. While Redis is unreachable they wait here and go out later."""
        self._queue(run_id, event, data, 0)

    def _queue(self, run_id: str, event: str, data: bytes, expire: int) -> None:
        if len(self._backlog) == self._backlog.maxlen and not self._overflowed:
            self._overflowed = True
            log.error("run event backlog full; the oldest buffered events are dropped")
        self._backlog.append((run_id, event, data, expire))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="trellis-event-writer")

    async def _flush(self) -> None:
        delay, warned = 0.1, False
        while self._backlog:
            batch = list(itertools.islice(self._backlog, 256))
            try:
                replies = await self._append(batch)
            except (RedisError, OSError):
                if not warned:
                    log.warning("redis unavailable; buffering run events")
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            # By identity, not position: a full backlog drops its oldest entries meanwhile.
            sent = {id(item) for item in batch}
            while self._backlog and id(self._backlog[0]) in sent:
                self._backlog.popleft()
            for (run_id, event, data, _), entry_id in zip(batch, replies, strict=True):
                self._hand_over(run_id, RunEvent(_text(entry_id), event, data))
            delay = 0.1
        if warned:
            log.info("redis back; buffered run events flushed")

    async def _append(self, batch: list[tuple[str, str, bytes, int]]) -> list[bytes]:
        """Append and publish a batch in one round trip on the writer's own connection: a
        plain pipeline of `_APPEND` calls, without the client's per-command machinery.
        Returns the entry ids. On an error the connection is dropped (a batch retried
        after a partial append may repeat events)."""
        conn = self._writer
        if conn is None:
            pool = self.redis.connection_pool
            conn = cast(Connection, pool.make_connection())  # type: ignore[no-untyped-call]
            self._writer = conn
        try:
            await conn.send_packed_command(
                conn.pack_commands(
                    (
                        "EVAL",
                        _APPEND,
                        2,
                        self.key(run_id),
                        self.size_key(run_id),
                        self.max_events,
                        event,
                        data,
                        expire,
                        self.max_bytes,
                    )
                    for run_id, event, data, expire in batch
                )
            )
            return [cast(bytes, await conn.read_response()) for _ in batch]
        except BaseException:
            self._writer = None
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect()
            raise

    def _hand_over(self, run_id: str, event: RunEvent) -> None:
        """Give an event Redis now holds to this process's readers of the run."""
        for inbox in self._followers.get(run_id, ()):
            inbox.put(event)
        if event.event == END:
            self._executing.discard(run_id)

    async def end(self, run_id: str, status: str, *, resumable: bool = False) -> None:
        """Append the end event and start the expiry clock: the retention period for a
        resumable run, a short grace for any other (readers still catching up)."""
        self._listeners.pop(run_id, None)
        self._queue(
            run_id, END, end_data(run_id, status), self.retention if resumable else self.grace
        )

    async def forget(self, run_ids: Collection[str]) -> None:
        """Delete the runs' streams, once what is queued for them is written (briefly: past
        that, it is dropped here instead)."""
        runs = set(run_ids)
        if not runs:
            return
        deadline = asyncio.get_running_loop().time() + 2.0
        while any(queued[0] in runs for queued in self._backlog):
            if asyncio.get_running_loop().time() > deadline:
                kept = [queued for queued in self._backlog if queued[0] not in runs]
                self._backlog.clear()
                self._backlog.extend(kept)
                break
            await asyncio.sleep(0.01)
        keys = [key for run_id in runs for key in (self.key(run_id), self.size_key(run_id))]
        try:
            for start in range(0, len(keys), 500):
                await self.redis.delete(*keys[start : start + 500])
        except (RedisError, OSError):
            log.warning("could not delete run events; they expire", extra={"runs": len(runs)})

    async def listened(self, run_id: str) -> bool:
        """Readers here, or subscribers of the run's channel anywhere (asked of Redis at most
        every `LISTENERS_TTL` seconds per run)."""
        if self._followers.get(run_id) or self._watchers.get(self.key(run_id)):
            return True
        now = asyncio.get_running_loop().time()
        known = self._listeners.get(run_id)
        if known is not None and now - known[0] < LISTENERS_TTL:
            return known[1]
        try:
            counts = cast(list[tuple[bytes, int]], await self.redis.pubsub_numsub(self.key(run_id)))
            heard = any(count > 0 for _, count in counts)
        except (RedisError, OSError):
            heard = True  # publish: the writer buffers while Redis is away
        if len(self._listeners) > 10_000:
            self._listeners.clear()
        self._listeners[run_id] = (now, heard)
        return heard

    def attach(self, run_id: str) -> None:
        """This process executes the run: local readers can follow it from memory."""
        self._executing.add(run_id)

    def detach(self, run_id: str) -> None:
        """This process stopped executing the run. Unless its end marker is on its way,
        local readers go on with `XREAD` (another worker may carry the run on)."""
        if run_id not in self._executing:
            return
        if any(queued[0] == run_id and queued[1] == END for queued in self._backlog):
            return  # the writer hands the end marker over, and forgets the run then
        self._executing.discard(run_id)
        for inbox in self._followers.get(run_id, ()):
            inbox.put(None)

    async def has_events(self, run_id: str) -> bool:
        """Whether the run's stream is retained (assume so while Redis is unreachable)."""
        if any(queued[0] == run_id for queued in self._backlog):
            return True
        try:
            return bool(await self.redis.exists(self.key(run_id)))
        except (RedisError, OSError):
            return True

    async def newest(self, run_id: str) -> str | None:
        """The id of the newest event the run's stream holds (`XREVRANGE ... COUNT 1`; events
        still queued here get later ids). `Unavailable` while Redis is unreachable."""
        try:
            entries = cast(
                list[_Entry], await self.redis.xrevrange(self.key(run_id), "+", "-", count=1)
            )
        except (RedisError, OSError) as exc:
            raise Unavailable(f"run events are unreachable: {type(exc).__name__}") from exc
        return _text(entries[0][0]) if entries else None

    async def _cursor(self, key: str, after: str) -> str | None:
        """Where a reader's `after` stands: "gone" when the stream expired or events after it
        may have been trimmed (it is older than the oldest retained event; MAXLEN does not
        record what it deleted), "end" when it is the end event (nothing follows), else None."""
        try:
            info = cast(_StreamInfo, await self.redis.xinfo_stream(key))
        except ResponseError:  # no such key
            return "gone"
        cursor = parse_event_id(after)
        first = info.get("first-entry") or info.get(b"first-entry")
        oldest = parse_event_id(_text(first[0])) if first else None
        if cursor is not None and oldest is not None and cursor < oldest:
            return "gone"
        last = info.get("last-entry") or info.get(b"last-entry")
        if last and _text(last[0]) == after and last[1].get(b"e") == END.encode():
            return "end"
        return None

    async def _read(self, key: str, last: str) -> list[tuple[str, str, bytes]]:
        """One XREAD after `last`; shielded, so a cancelled reader never leaves a reply pending
        on a pooled connection (the next user of it would read someone else's events)."""
        reply = await asyncio.shield(self.redis.xread({key: last}, count=PAGE, block=self.block_ms))
        out: list[tuple[str, str, bytes]] = []
        for _, entries in cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply or []
        ):
            for entry_id, fields in entries:
                out.append((entry_id.decode(), fields[b"e"].decode(), fields[b"d"]))
        return out

    async def subscribe(
        self,
        run_id: str,
        after: str | None = None,
        finished: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Events after `after` (all when None), then live ones up to the end event.

        A run executing in this process is followed from memory; any other through the
        process's pub/sub feed. Either falls back to reading the stored stream (`XREAD`, a
        page at a time) when its source goes away or the reader falls behind. `finished`
        (is the run over?) is asked whenever a wait for events is in vain or Redis does not
        answer: a run that ended without its end marker reaching Redis still closes its
        streams, during a Redis outage too.
        """
        key = self.key(run_id)
        last = after or "0-0"
        if after is not None:
            parse_event_id(after)
            try:
                cursor = await self._cursor(key, after)
            except (RedisError, OSError):
                cursor = None  # the read loop waits for Redis
            if cursor == "gone":
                yield resync_event(run_id, after)
            if cursor is not None:
                return
        local = after is None and run_id in self._executing
        async for followed in self._follow(run_id, after, finished, local=local):
            last = followed.id
            yield followed
            if followed.event == END:
                return
        delay = 0.1
        catching_up = last != "0-0"
        while True:
            try:
                if catching_up and await self._trimmed(key, last):
                    yield resync_event(run_id, last)
                    return
                entries = await self._read(key, last)
            except (RedisError, OSError):
                if finished is not None and await finished():
                    # Redis is away and the run is over: end now rather than wait for Redis.
                    yield RunEvent(last, END, b"null")
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            catching_up = len(entries) == PAGE
            for entry_id, event, data in entries:
                last = entry_id
                yield RunEvent(entry_id, event, data)
                if event == END:
                    return
            if not entries and finished is not None and await finished():
                # Over, yet no end marker came: take what is left, without blocking, and stop.
                async for entry_id, event, data in self._pages(key, last):
                    last = entry_id
                    yield RunEvent(entry_id, event, data)
                    if event == END:
                        return
                yield RunEvent(last, END, b"null")
                return

    async def _follow(
        self,
        run_id: str,
        after: str | None,
        finished: Callable[[], Awaitable[bool]] | None,
        *,
        local: bool,
    ) -> AsyncIterator[RunEvent]:
        """What Redis holds after `after` (in pages), then what arrives: handed over by this
        process's writer (`local`) or by the pub/sub feed. Ends with the end marker
        (included), or early, when the source goes away or the reader fell behind (the
        caller goes on with `XREAD` from the last event it got)."""
        key = self.key(run_id)
        inbox = _Inbox()
        readers, slot = (self._followers, run_id) if local else (self._watchers, key)
        readers.setdefault(slot, set()).add(inbox)
        try:
            # Registered first, then what is there: nothing falls in between.
            if not local and not await self._feed.watch(key):
                return
            last = parse_event_id(after) or (0, 0)
            try:
                async for entry_id, event, data in self._pages(key, after or "0-0"):
                    last = parse_event_id(entry_id) or last
                    yield RunEvent(entry_id, event, data)
                    if event == END:
                        return
            except (RedisError, OSError):
                return  # the XREAD loop waits for Redis
            while True:
                try:
                    item = await asyncio.wait_for(
                        inbox.get(), None if local else self.block_ms / 1000
                    )
                except TimeoutError:
                    if finished is None or not await finished():
                        continue
                    # Over, yet no end marker came: take what is left and stop.
                    try:
                        async for entry_id, event, data in self._pages(key, f"{last[0]}-{last[1]}"):
                            if event != END:
                                last = parse_event_id(entry_id) or last
                                yield RunEvent(entry_id, event, data)
                    except (RedisError, OSError):
                        return  # the XREAD loop waits for Redis
                    yield RunEvent(f"{last[0]}-{last[1]}", END, b"null")
                    return
                if item is None:
                    return
                position = parse_event_id(item.id) or last
                if position <= last:
                    continue  # already read from Redis
                last = position
                yield item
                if item.event == END:
                    return
        finally:
            group = readers.get(slot)
            if group is not None:
                group.discard(inbox)
                if not group:
                    readers.pop(slot, None)
            if not local:
                self._feed.unwatch(key)

    def _published(self, channel: str, payload: bytes) -> None:
        """An event the feed received: to this process's readers of that stream."""
        entry_id, event, data = payload.split(b"\n", 2)
        for inbox in self._watchers.get(channel, ()):
            inbox.put(RunEvent(entry_id.decode(), event.decode(), data))

    def _feed_lost(self) -> None:
        """The pub/sub connection dropped: its readers go on with `XREAD`."""
        for group in self._watchers.values():
            for inbox in group:
                inbox.put(None)

    async def _pages(self, key: str, last: str) -> AsyncIterator[tuple[str, str, bytes]]:
        """What the stream holds after `last`, read `PAGE` entries at a time (without blocking)."""
        while True:
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await self.redis.xrange(key, min=f"({last}", max="+", count=PAGE),
            )
            for entry_id, fields in entries:
                last = entry_id.decode()
                yield last, fields[b"e"].decode(), fields[b"d"]
            if len(entries) < PAGE:
                return

    async def _trimmed(self, key: str, last: str) -> bool:
        """Whether events after `last` were deleted from the stream (trimmed before this reader
        got them): Redis records the highest id it deleted. A stream that is gone (expired,
        or Redis restarted empty) is not counted: what is appended again follows `last`."""
        try:
            info = cast(dict[str | bytes, object], await self.redis.xinfo_stream(key))
        except ResponseError:  # no such key
            return False
        deleted = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id")
        if not isinstance(deleted, str | bytes):
            return False
        gone, cursor = parse_event_id(_text(deleted)), parse_event_id(last)
        return gone is not None and cursor is not None and gone > cursor

    async def close(self) -> None:
        """Flush what is buffered (briefly) and stop; the Redis client belongs to the caller."""
        if self._flusher is not None and not self._flusher.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._flusher), 2.0)
            self._flusher.cancel()
        await self._feed.close()
        if self._writer is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._writer.disconnect()


_SUBSCRIBE_SECONDS = 5.0
"""How long a reader waits for Redis to confirm a subscription before it polls instead."""


class _LiveFeed:
    """This process's pub/sub connection: events as writers append them, without a
    request per event. Channels are the stream keys (`_APPEND` publishes there).

    Subscribing and unsubscribing happen in `watch`, in order on the one connection: a
    channel nobody reads any more stays subscribed until the next `watch`, so reading a
    run again right away needs no new subscription.
    """

    def __init__(
        self,
        redis: Redis,
        deliver: Callable[[str, bytes], None],
        lost: Callable[[], None],
    ) -> None:
        self._redis = redis
        self._deliver = deliver
        self._lost = lost
        self._conn: Connection | None = None
        self._connecting = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._readers: dict[str, int] = {}
        self._subscribed: dict[str, asyncio.Future[None]] = {}
        """Channels subscribed (or being subscribed) on the connection, and the
        confirmation of each."""

    async def watch(self, channel: str) -> bool:
        """Count a reader of `channel` (until its `unwatch`) and make sure the channel is
        subscribed; False when the feed is unavailable (the reader then polls the stream)."""
        self._readers[channel] = self._readers.get(channel, 0) + 1
        try:
            conn = await self._connection()
            idle = [c for c in self._subscribed if c != channel and not self._readers.get(c)]
            if idle:
                for name in idle:
                    del self._subscribed[name]
                await conn.send_command("UNSUBSCRIBE", *idle)
            confirmed = self._subscribed.get(channel)
            if confirmed is None:
                confirmed = asyncio.get_running_loop().create_future()
                self._subscribed[channel] = confirmed
                await conn.send_command("SUBSCRIBE", channel)
            await asyncio.wait_for(asyncio.shield(confirmed), _SUBSCRIBE_SECONDS)
            return True
        except (RedisError, OSError, TimeoutError):
            return False  # still counted: the reader calls `unwatch` when it stops

    def unwatch(self, channel: str) -> None:
        """One reader of `channel` fewer."""
        left = self._readers.get(channel, 0) - 1
        if left > 0:
            self._readers[channel] = left
        else:
            self._readers.pop(channel, None)

    async def _connection(self) -> Connection:
        async with self._connecting:  # readers arriving together share one connection
            if self._conn is None:
                pool = self._redis.connection_pool
                conn = cast(Connection, pool.make_connection())  # type: ignore[no-untyped-call]
                await conn.connect()  # type: ignore[no-untyped-call]
                self._conn = conn
                self._reader = asyncio.create_task(self._read(conn), name="trellis-event-feed")
            return self._conn

    async def _read(self, conn: Connection) -> None:
        try:
            while True:
                reply = cast(
                    list[bytes], await conn.read_response(timeout=math.inf, push_request=True)
                )
                kind, channel = reply[0], _text(reply[1])
                if kind == b"message":
                    self._deliver(channel, reply[2])
                elif kind == b"subscribe":
                    confirmed = self._subscribed.get(channel)
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
        except (RedisError, OSError) as exc:
            log.info("event feed lost; readers poll the streams", extra={"error": str(exc)})
        finally:
            if self._conn is conn:
                self._conn = None
                for confirmed in self._subscribed.values():
                    if not confirmed.done():
                        confirmed.set_exception(RedisConnectionError("event feed lost"))
                        confirmed.exception()  # retrieved: nobody else may be waiting
                self._subscribed.clear()
                self._lost()
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect()

    async def close(self) -> None:
        """Stop reading and drop the connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
