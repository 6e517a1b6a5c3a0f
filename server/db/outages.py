"""Which exceptions are infrastructure faults (a store was unreachable), not errors of a graph.

A dropped or refused Postgres connection, an administrator's shutdown, a serialization
failure, an exhausted pool or an unreachable Redis say nothing about the graph being run:
the same step succeeds once the store is back. `infrastructure_fault` names such a fault,
so the executor requeues the run instead of failing it and the API answers 503.

The same exception raised by a graph's own database code is the graph's error: a fault
counts as infrastructure when Trellis or LangGraph (its checkpointer, its store) made the
call that failed, judged from the traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import psycopg
import psycopg_pool
import sqlalchemy.exc
from redis import exceptions as redis_errors

_TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
    "53300",  # too_many_connections
}
"""SQLSTATEs that say "try again": the statement was fine, the server was not available."""

_DRIVERS = tuple(
    os.sep + name + os.sep
    for name in ("psycopg", "psycopg_pool", "sqlalchemy", "redis", "asyncio", "contextlib")
)
"""Packages a fault passes through, not the code that asked for the failed call."""

_OURS = (
    str(Path(__file__).resolve().parents[1]) + os.sep,  # server/
    *(os.sep + name + os.sep for name in ("langgraph", "langchain_core")),
)
"""Where a call to a store is infrastructure: Trellis itself, LangGraph's savers and stores."""


def _transient(error: BaseException) -> bool:
    if isinstance(error, psycopg_pool.PoolTimeout | psycopg_pool.TooManyRequests):
        return True
    if isinstance(error, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.DisconnectionError):
        return True  # SQLAlchemy's pool: no connection in time, or a dead one
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return error.orig is not None and _transient(error.orig)
    if isinstance(error, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return True
    if isinstance(error, psycopg.Error):
        sqlstate = error.sqlstate or ""
        if sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08"):
            return True
        # Without a SQLSTATE an OperationalError is the client's: the connection closed,
        # broke mid-statement or could not be made.
        return isinstance(error, psycopg.OperationalError) and not sqlstate
    return isinstance(error, ConnectionError)  # OSError: refused, reset, broken pipe


def _called_by_us(tb: TracebackType | None) -> bool:
    """Whether the innermost frame of `tb` outside the drivers (the code that made the call
    that failed) is Trellis' or LangGraph's, rather than a graph's own code."""
    caller: str | None = None
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        if not any(part in path for part in _DRIVERS):
            caller = path
        tb = tb.tb_next
    return caller is None or any(part in caller for part in _OURS)


def infrastructure_fault(error: BaseException) -> str | None:
    """A one-line description of `error` when it is an infrastructure fault; else None.

    Looks through `__cause__`/`__context__` chains (a fault wrapped by another error).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient(current) and _called_by_us(current.__traceback__):
            message = str(current).strip().splitlines()
            detail = message[0] if message else ""
            return f"{type(current).__name__}: {detail}" if detail else type(current).__name__
        current = current.__cause__ or current.__context__
    return None
