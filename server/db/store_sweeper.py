"""Deletes the store's expired items in the background, one process at a time.

Expired items are already invisible (`server.db.trellis_store`); the sweep only reclaims
their rows (their vectors go with them by cascade). Each sweep takes a Postgres advisory lock
for each batch (`pg_try_advisory_xact_lock`): another process sweeping meanwhile makes this
one skip, never wait. A batch deletes at most `batch_size` rows, a sweep at most
`max_batches` batches; what is left waits for the next sweep. Finding nothing costs one
index probe (`idx_store_expires_at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.core import metrics
from server.db.outages import infrastructure_fault
from server.db.pool import Pool

log = logging.getLogger("trellis.store")

SWEEP_LOCK = 0x7472_6C73_7377_6570  # "trlsswep"
"""Advisory lock held by the process sweeping the store."""

SWEEP_SQL = """
    DELETE FROM store
    WHERE (prefix, key) IN (
        SELECT prefix, key FROM store
        WHERE expires_at IS NOT NULL AND expires_at <= NOW()
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
"""


class StoreSweeper:
    """Sweeps expired store items every `interval_seconds` (see the module docstring)."""

    def __init__(
        self,
        pool: Pool,
        *,
        interval_seconds: float,
        batch_size: int = 1000,
        max_batches: int = 100,
    ) -> None:
        self._pool = pool
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.swept_total = 0
        """Items this process has deleted since it started."""
        self._task: asyncio.Task[None] | None = None

    async def _batch(self) -> int | None:
        """Delete one batch; None when another process holds the sweep lock."""
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (SWEEP_LOCK,))
            row = await cursor.fetchone()
            if row is None or not row["ok"]:
                return None
            cursor = await conn.execute(SWEEP_SQL, (self.batch_size,))
            return int(cursor.rowcount)

    async def sweep(self) -> int:
        """One sweep: expired items deleted, in bounded batches; returns how many."""
        deleted = 0
        for _ in range(self.max_batches):
            count = await self._batch()
            if count is None:
                break
            deleted += count
            if count < self.batch_size:
                break
        if deleted:
            self.swept_total += deleted
            metrics.STORE_ITEMS_SWEPT.inc(deleted)
            log.info("store sweep deleted %d expired items", deleted, extra={"deleted": deleted})
        return deleted

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.sweep()
            except Exception as exc:
                fault = infrastructure_fault(exc)
                if fault is None:
                    log.exception("store sweep failed")
                else:
                    log.warning("store sweep skipped: %s", fault)

    def start(self) -> None:
        """Start sweeping in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="trellis-store-sweeper")

    async def stop(self) -> None:
        """Stop sweeping (waits for a sweep in progress to be cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
