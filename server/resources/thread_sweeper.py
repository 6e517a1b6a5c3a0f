"""ThreadSweeper: applies expired thread TTLs and keep-last-N checkpoint retention.

Every process starts one; a Postgres advisory lock lets one sweep at a time across them.
A sweep reads only the rows due (partial indexes on `threads.expires_at` and
`threads.retention_due`), so it costs two index probes when nothing is due, and handles
at most `limit` threads, in batches. A thread with a pending or running run, or (for
its TTL) a pending approval, is not touched: it waits for a sweep after they end.

Retention keeps a thread's last N checkpoints, N from the thread's metadata
(`checkpoint_keep_last`), else its assistant's metadata, else the process default
(`CHECKPOINT_KEEP_LAST` or `langgraph.json` `checkpointer.keep_last`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.core import metrics
from server.core.errors import NotFound
from server.resources.thread_service import ThreadService

log = logging.getLogger("trellis.sweeper")

LOCK_KEY = 0x7472_6C73_7477_6570  # "trlstwep": one sweeper at a time, across processes
BATCH = 100
KEEP_LAST_KEY = "checkpoint_keep_last"
"""The metadata key (a thread's or an assistant's) that overrides the keep-last default."""

_EXPIRED_SQL = """
SELECT t.thread_id, t.owner, t.ttl_strategy FROM threads t
WHERE t.expires_at <= now()
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                  AND r.status IN ('pending', 'running'))
  AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.thread_id = t.thread_id
                  AND a.status = 'pending')
ORDER BY t.expires_at LIMIT :n
"""

_RETENTION_SQL = """
SELECT t.thread_id, t.metadata ->> :key AS own, a.metadata ->> :key AS assistant
FROM threads t
LEFT JOIN assistants a ON a.assistant_id::text = t.metadata ->> 'assistant_id'
WHERE t.retention_due
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                  AND r.status IN ('pending', 'running'))
ORDER BY t.updated_at LIMIT :n
"""


# Threads for which no N applies (no default, no metadata) are marked done in bulk.
_CLEAR_SQL = """
UPDATE threads SET retention_due = false WHERE thread_id IN (
    SELECT t.thread_id FROM threads t
    LEFT JOIN assistants a ON a.assistant_id::text = t.metadata ->> 'assistant_id'
    WHERE t.retention_due AND t.metadata ->> :key IS NULL AND a.metadata ->> :key IS NULL
    LIMIT :n)
"""


@dataclass
class Sweep:
    """What one sweep did."""

    deleted: list[str] = field(default_factory=list)
    kept_latest: list[str] = field(default_factory=list)
    trimmed: int = 0
    """Threads whose checkpoints were trimmed to their last N."""
    checkpoints: int = 0
    """Checkpoints deleted by keep_latest and retention."""
    skipped: bool = False
    """Another process held the sweep lock."""


def keep_last_of(own: object, assistant: object, default: int | None) -> int | None:
    """The N kept: the thread's metadata value, else the assistant's, else `default`
    (a value that is not a positive integer is ignored)."""
    for value in (own, assistant):
        try:
            n = int(str(value))
        except ValueError:
            continue
        if n >= 1:
            return n
    return default


class ThreadSweeper:
    """Sweeps every `interval` seconds until stopped."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        threads: ThreadService,
        interval: float,
        limit: int,
        keep_last: int | None,
    ) -> None:
        self.engine = engine
        self.threads = threads
        self.interval = interval
        self.limit = limit
        self.keep_last = keep_last
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="trellis-thread-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next sweep tries again
                log.exception("thread sweep failed")

    async def sweep(self) -> Sweep:
        """One sweep, if no other process is sweeping."""
        done = Sweep()
        async with self.engine.connect() as lock:
            got = await lock.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
            await lock.commit()
            if not got:
                done.skipped = True
                return done
            try:
                await self._expire(done)
                await self._retain(done)
            finally:
                await lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                await lock.commit()
        if done.deleted or done.kept_latest or done.trimmed:
            log.info(
                "thread sweep",
                extra={
                    "deleted": len(done.deleted),
                    "kept_latest": len(done.kept_latest),
                    "trimmed": done.trimmed,
                    "checkpoints_deleted": done.checkpoints,
                },
            )
        return done

    async def _expire(self, done: Sweep) -> None:
        handled = 0
        seen: set[str] = set()
        while handled < self.limit:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(text(_EXPIRED_SQL), {"n": min(BATCH, self.limit - handled)})
                ).all()
            rows = [row for row in rows if str(row[0]) not in seen]
            if not rows:
                return
            for thread_id, owner, strategy in rows:
                tid = str(thread_id)
                seen.add(tid)
                handled += 1
                if strategy == "keep_latest":
                    pruned = await self.threads.expire_keep_latest(uuid.UUID(tid))
                    if pruned is not None:
                        done.kept_latest.append(tid)
                        done.checkpoints += pruned.checkpoints
                        metrics.THREADS_SWEPT.labels("keep_latest").inc()
                    continue
                try:
                    if await self.threads.expire_delete(owner, tid):
                        done.deleted.append(tid)
                        metrics.THREADS_SWEPT.labels("delete").inc()
                except NotFound:
                    continue

    async def _retain(self, done: Sweep) -> None:
        if self.keep_last is None:
            async with self.engine.begin() as conn:
                await conn.execute(text(_CLEAR_SQL), {"key": KEEP_LAST_KEY, "n": self.limit})
        handled = 0
        seen: set[str] = set()
        while handled < self.limit:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(_RETENTION_SQL),
                        {"n": min(BATCH, self.limit - handled), "key": KEEP_LAST_KEY},
                    )
                ).all()
            rows = [row for row in rows if str(row[0]) not in seen]
            if not rows:
                return
            for thread_id, own, assistant in rows:
                seen.add(str(thread_id))
                handled += 1
                keep = keep_last_of(own, assistant, self.keep_last)
                pruned = await self.threads.retain(uuid.UUID(str(thread_id)), keep)
                if pruned is not None and pruned.checkpoints:
                    done.trimmed += 1
                    done.checkpoints += pruned.checkpoints
                    metrics.THREADS_SWEPT.labels("keep_last").inc()
