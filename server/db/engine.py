"""The SQLAlchemy async engine for Trellis' own tables, and why a database cannot be reached."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeAlias, cast

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import RowMapping, event, exc, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from server.core.settings import Settings
from server.db.pool import peer_spoke

_PASSWORD_IN_URL = re.compile(r"^(?P<head>[^:/]+://[^:@/]*):[^@/]*@")


def redact_url(url: str) -> str:
    """`url` with its password, if any, shown as `***` (for logs and error messages)."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m['head']}:***@", url, count=1)


# SQLSTATEs of the errors a server answers a connection attempt with. libpq does not hand
# them to psycopg for a failed connection (its message carries the server's text only), so
# `connect_problem` also reads the error's message; with a result, the code decides.
_SQLSTATE_PROBLEMS = {
    "28P01": "refused the password",
    "28000": "refused the role or its authentication",
    "3D000": "has no such database",
}


def connect_problem(error: psycopg.Error, url: str) -> str:
    """Why connecting to `url` failed, in one line that names the address (password masked)."""
    where = f"Postgres at {redact_url(url)}"
    message = str(error).strip()
    detail = message.splitlines()[0] if message else type(error).__name__
    pgconn = getattr(error, "pgconn", None)
    sqlstate = error.sqlstate or ""
    if isinstance(error, psycopg.errors.ConnectionTimeout) or "timeout expired" in message:
        return f"{where} did not answer in time (connection timeout): is the host reachable?"
    if sqlstate in _SQLSTATE_PROBLEMS:
        return f"{where} {_SQLSTATE_PROBLEMS[sqlstate]} ({sqlstate}): {detail}"
    found = re.search(r'database "([^"]+)" does not exist', message)
    if found:
        return (
            f"{where} has no database {found[1]!r} (3D000): create it "
            f"(createdb {found[1]}) or name another in the URL"
        )
    found = re.search(r'role "([^"]+)" does not exist', message)
    if found:
        return f"{where} has no role {found[1]!r} (28000): create it or use another user"
    if "no password supplied" in message or (
        pgconn is not None and pgconn.needs_password and not pgconn.used_password
    ):
        return f"{where} asks for a password and the URL gives none (28P01): add it to the URL"
    if "password authentication failed" in message or (
        pgconn is not None and pgconn.used_password and "FATAL" in message
    ):
        return f"{where} refused the password (28P01): check the user and password in the URL"
    if "Connection refused" in message:
        return f"{where} refused the connection: nothing listens there (is Postgres running?)"
    if "No such file or directory" in message and "socket" in message:
        return f"{where}: no Postgres socket there (is Postgres running?)"
    if "resolve host" in message or "could not translate host name" in message:
        return f"{where}: the host name does not resolve"
    return f"{where} could not be used: {detail}"


def check_connection(url: str, timeout: float = 2.0) -> str | None:
    """Why Postgres at `url` cannot be used (see `connect_problem`), or None when it answers."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return connect_problem(error, url)
    return None


def create_engine(settings: Settings) -> AsyncEngine:
    """A bounded, health-checked engine; statements time out server-side."""
    engine = create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_max_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args={
            # Only the hot statements ask to be prepared (`fetch_one`/`fetch_all`); what
            # SQLAlchemy builds is never executed often enough to reach this threshold.
            "prepare_threshold": 2**31 - 1,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )
    _ping_when_idle(engine, settings.db_pool_check_idle_seconds)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a connection at checkout only when it sat in the pool longer than `idle_seconds`
    or the server closed it meanwhile (what `pool_pre_ping` does on every checkout); a dead
    one is replaced transparently."""
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _returned(_: object, record: ConnectionPoolEntry) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _check(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _: object) -> None:
        returned = record.info.get("returned_at")
        if returned is not None and time.monotonic() - returned <= idle_seconds:
            driver_conn = cast(psycopg.AsyncConnection[object], record.driver_connection)
            if not peer_spoke(driver_conn.pgconn.socket):
                return  # recently used, and the server has not closed it since
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(str(error)) from error


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database (for `/ok?check_db=1`)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def iso(value: datetime | None) -> str | None:
    """A timestamp as the API shows it."""
    return value.isoformat() if value is not None else None


Row: TypeAlias = dict[str, Any]  # Any: psycopg's `dict_row` and SQLAlchemy type no column
"""A row read by column name; the rows modules cast it to their resource's TypedDict."""


def plain(row: RowMapping | Mapping[str, object]) -> Row:
    """A row as an API object: timestamps in ISO format, UUIDs as strings."""
    out: Row = {}
    for key, value in row.items():
        name = key
        if isinstance(value, datetime):
            out[name] = value.isoformat()
        elif hasattr(value, "hex") and type(value).__name__ == "UUID":
            out[name] = str(value)
        else:
            out[name] = value
    return out


# The hot path --------------------------------------------------------------
#
# Creating, claiming and finishing runs are a few statements each, executed for every
# run. SQLAlchemy's per-statement work (building, compiling, result processing) costs
# several times the round trip, so those statements are plain SQL sent straight to a
# psycopg connection and prepared once per connection: the one under a SQLAlchemy
# connection (same transaction) or one from the shared psycopg pool (autocommit).


Params = Sequence[object] | Mapping[str, object]
Conn = AsyncConnection | psycopg.AsyncConnection[object]
"""Where hot statements run: inside a SQLAlchemy transaction, or on a psycopg connection
from the shared pool (autocommit: a lone statement is one round trip, no BEGIN/COMMIT)."""


async def driver(conn: Conn) -> psycopg.AsyncConnection[object]:
    """The psycopg connection itself, or the one under a SQLAlchemy connection."""
    if isinstance(conn, psycopg.AsyncConnection):
        return conn
    sync = conn.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        fairy = sync.connection  # checked out already: no I/O, so no greenlet hop
    else:
        fairy = await conn.get_raw_connection()
    return cast(psycopg.AsyncConnection[object], fairy.driver_connection)


async def fetch_all(conn: Conn, sql: str, params: Params = ()) -> list[Row]:
    """Rows of a hot statement, as dicts. `sql` is built from constants only."""
    async with (await driver(conn)).cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params, prepare=True)
        return await cur.fetchall() if cur.description is not None else []


async def fetch_one(conn: Conn, sql: str, params: Params = ()) -> Row | None:
    """The first row of a hot statement, or None. `sql` is built from constants only."""
    async with (await driver(conn)).cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params, prepare=True)
        return await cur.fetchone() if cur.description is not None else None


def jsonb(value: object) -> Jsonb | None:
    """A JSONB parameter for hot SQL; None stays SQL NULL."""
    return None if value is None else Jsonb(value)


class Named(Protocol):
    """A table column, or anything else with a name."""

    @property
    def name(self) -> str: ...


def columns(*cols: Named) -> str:
    """A select list for hot SQL, from the model's columns (one source of truth)."""
    return ", ".join(f'"{col.name}"' for col in cols)
