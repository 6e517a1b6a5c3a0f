"""The psycopg pool LangGraph's checkpointer and store share, with a cheap health check and a
quick recovery after a database restart."""

from __future__ import annotations

import select
import time
import weakref
from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from server.core.settings import Settings

Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[DictRow]]
"""The shared pool: autocommit connections whose rows are dicts."""


def peer_spoke(fileno: int) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it or
    sent it a message (a shutdown notice) since its last use. One syscall, no round trip."""
    if fileno < 0:
        return True
    poller = select.poll()  # not select(): descriptors above 1024 are fine
    poller.register(fileno, select.POLLIN | select.POLLERR | select.POLLHUP)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


class IdleCheck:
    """Pool health check: ping a connection when it has not been handed out for
    `idle_seconds`, or when its socket shows the server closed it (a restart terminates
    every backend: each idle connection then has an error and an EOF to read). A ping on
    every checkout would cost a round trip per query."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._handed_out: weakref.WeakKeyDictionary[AsyncConnection[DictRow], float] = (
            weakref.WeakKeyDictionary()
        )

    async def check(self, conn: AsyncConnection[DictRow]) -> None:
        """The pool's `check` hook (no `reset` hook: it would make every return a task)."""
        now = time.monotonic()
        last = self._handed_out.get(conn)
        if last is None or now - last > self.idle_seconds or peer_spoke(conn.pgconn.socket):
            await AsyncConnectionPool.check_connection(conn)
        self._handed_out[conn] = now


class QuickAttempt(AttemptWithBackoff):
    """Reconnection attempts every ~0.1-0.5 s instead of psycopg_pool's doubling from 1 s: a
    pool that lost its connections during a 20 s outage would otherwise wait up to 16 s more
    after the database returned. A refused connection costs the server nothing."""

    INITIAL_DELAY = 0.1
    DELAY_BACKOFF = 1.5
    MAX_DELAY = 0.5

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.MAX_DELAY)


class TrellisPool(AsyncConnectionPool[AsyncConnection[DictRow]]):
    """psycopg's pool, recovering within half a second of the database's return, and failing
    at once (not after its whole timeout) while the database refuses connections."""

    FAIL_FAST_SECONDS = 1.0
    """A checkout with no idle connection fails at once when the last attempt to connect,
    this recent, failed (the pool retries in the background every <=0.5 s meanwhile)."""

    # Overrides keep psycopg_pool's signatures (a `timeout` argument: ASYNC109 is theirs).
    # Any: the arguments pass through to psycopg_pool's constructor unchanged.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failed_at: float | None = None

    async def _connect(self, timeout: float | None = None) -> AsyncConnection[DictRow]:  # noqa: ASYNC109
        try:
            conn = await super()._connect(timeout)
        except Exception:
            self._failed_at = time.monotonic()
            raise
        self._failed_at = None
        return conn

    async def getconn(self, timeout: float | None = None) -> AsyncConnection[DictRow]:  # noqa: ASYNC109
        if not self._pool and self._refusing():
            # A request would wait the whole timeout for a database that is not there: the
            # caller answers 503 (the API) or retries shortly (workers) instead.
            raise PoolTimeout("the database refuses connections")
        return await super().getconn(timeout)

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        if attempt is None:
            attempt = QuickAttempt(timeout=self.reconnect_timeout)
        await super()._add_connection(attempt, growing)

    async def _getconn_with_check_loop(self, deadline: float) -> AsyncConnection[DictRow]:
        # The parent sleeps 1 s, 2 s, 4 s... between connections that failed their check:
        # after a restart every idle connection fails it, so the nth checkout would wait
        # for the nth backoff. Dead connections are dropped at once; the next is tried. Once
        # one failed, a wait for a fresh one gives up early if connecting fails meanwhile.
        failed_check = False
        while True:
            remaining = deadline - time.monotonic()
            wait = min(remaining, self.FAIL_FAST_SECONDS) if failed_check else remaining
            try:
                conn = await self._getconn_unchecked(wait)
            except PoolTimeout:
                if wait >= remaining or self._refusing():
                    raise
                failed_check = False  # connecting is merely slow: wait for the rest
                continue
            try:
                await self._check_connection(conn)
            except Exception:
                await self._putconn(conn, from_getconn=True)
                failed_check = True
                continue
            except BaseException:
                await self._putconn(conn, from_getconn=True)
                raise
            return conn

    def _refusing(self) -> bool:
        """Whether the last attempt to connect failed, recently."""
        failed_at = self._failed_at
        return failed_at is not None and time.monotonic() - failed_at < self.FAIL_FAST_SECONDS


async def open_pool(settings: Settings) -> Pool:
    """The psycopg pool LangGraph's checkpointer and store use (autocommit, no prepares)."""
    pool: Pool = TrellisPool(
        settings.psycopg_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout_seconds,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=IdleCheck(settings.db_pool_check_idle_seconds).check,
        open=False,
    )
    await pool.open(wait=True, timeout=settings.db_pool_timeout_seconds)
    return pool
