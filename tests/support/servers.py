"""Helpers shared by the tests: scratch databases, free ports and server processes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import psycopg
import uvicorn
from starlette.types import ASGIApp

from server.core.settings import Settings
from server.http.wire import BoundedHttpToolsProtocol

ROOT = Path(__file__).resolve().parents[2]
ADMIN_URL = os.environ.get(
    "TRELLIS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_GRAPHS = ROOT / "tests" / "support" / "graphs" / "langgraph.json"
NO_RATE_LIMIT_ENV = {"RATE_LIMIT_ENABLED": "false"}
"""Rate limits live in the shared Redis and are keyed per identity: a suite issuing hundreds
of runs a minute would throttle itself. Tests of the limits turn them on explicitly."""


def builtin_settings(database: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings serving the built-in graphs (`langgraph.json` at the root) offline, on
    `database`, with embedded data in `data_dir`."""
    fields: dict[str, object] = {
        "environment": "test",
        "database_url": database,
        "graphs_config": ROOT / "langgraph.json",
        "embedded_data_dir": data_dir,
        "log_level": "WARNING",
        "openai_api_key": None,
        "openai_base_url": None,
        **overrides,
    }
    return Settings(**fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_database() -> str:
    """A fresh, empty database; returns its URL."""
    name = f"trellis_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database() -> Iterator[str]:
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


def wait_ready(
    url: str, timeout: float = 150.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer /ok within {timeout}s")


def spawn(
    args: list[str],
    *,
    database_url: str,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `trellis ARGS` as a separate process on `database_url`."""
    full_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        **NO_RATE_LIMIT_ENV,
        **(env or {}),
    }
    if log is None:
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def server_process(
    *, database_url: str, config: Path = TEST_GRAPHS, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`trellis serve` in its own process; yields its URL and the process."""
    port = free_port()
    proc = spawn(
        ["serve", "--config", str(config), "--port", str(port)], database_url=database_url, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@asynccontextmanager
async def serve_in_loop(app: ASGIApp, *, max_header_bytes: int = 64 * 1024) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a loopback port, in this event loop, as `trellis serve`
    does (request heads bounded to `max_header_bytes`); yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        http=BoundedHttpToolsProtocol,
        h11_max_incomplete_event_size=max_header_bytes,
        proxy_headers=False,  # as `trellis serve`: proxy trust is the app's `FORWARDED_ALLOW_IPS`
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
