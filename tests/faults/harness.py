"""A multi-process Trellis for fault tests: one API process, N worker processes, one scratch DB.

Every process is a direct child (`python -m server.cli ...`), so a signal sent to
its pid reaches Trellis itself. Logs go to files under the test's tmp dir and
their tails are printed when a test fails. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.support import pg_cluster
from tests.support.servers import ROOT, free_port, scratch_database, wait_ready

GRAPHS = Path(__file__).resolve().parent / "graphs" / "langgraph.json"
PYCACHE = str(Path(tempfile.gettempdir()) / "trellis-fault-pycache")

FAST_ENV = {
    "RUN_LEASE_SECONDS": "2",
    "RUN_SWEEP_SECONDS": "0.5",
    "SHUTDOWN_GRACE_SECONDS": "4",
    "RATE_LIMIT_ENABLED": "false",
    "ENVIRONMENT": "test",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "text",
    "DB_POOL_MAX_SIZE": "10",
}

TABLES = """
CREATE TABLE IF NOT EXISTS fault_attempts (
    id bigserial PRIMARY KEY,
    thread_id text NOT NULL,
    run_id text NOT NULL,
    step text NOT NULL,
    run_attempt int NOT NULL,
    pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);
CREATE TABLE IF NOT EXISTS fault_effects (
    thread_id text NOT NULL,
    step text NOT NULL,
    n int NOT NULL DEFAULT 1,
    PRIMARY KEY (thread_id, step)
);
"""


def _popen(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate (then kill) a child and reap it; tolerant of stopped or dead children."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    else:
        proc.wait()


class Cluster:
    """API + workers on one scratch database."""

    def __init__(self, db: str, logs: Path, env: dict[str, str], config: Path = GRAPHS) -> None:
        self.db = db
        self.config = config
        self.logs = logs
        self.env = {**os.environ, "DATABASE_URL": db, **FAST_ENV, **env}
        # Every Trellis process imports a lot; with PYTHONDONTWRITEBYTECODE each one would
        # compile it all again (~15 s of CPU). Cache bytecode outside the venv instead.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env.setdefault("PYTHONPYCACHEPREFIX", PYCACHE)
        self.url = ""
        self.api: subprocess.Popen[bytes] | None = None
        self.more_apis: list[subprocess.Popen[bytes]] = []
        self.more_urls: list[str] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.retired: list[subprocess.Popen[bytes]] = []
        self._n = 0
        self.log_paths: dict[int, Path] = {}

    # processes -------------------------------------------------------------

    def migrate(self) -> None:
        """Apply every schema once, so processes started together do not race to create it."""
        log = self.logs / "migrate.log"
        with log.open("ab") as out:
            done = subprocess.run(
                [sys.executable, "-m", "server.cli", "migrate"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=180,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"trellis migrate failed: {tail(log)}")

    def start_api(self, *, wait: bool = True) -> None:
        port = free_port()
        self.api = _popen(
            ["serve", "--no-worker", "--config", str(self.config), "--port", str(port)],
            self.env,
            self.logs / "api.log",
        )
        self.url = f"http://127.0.0.1:{port}"
        if wait:
            self.wait_api()

    def add_api(self) -> str:
        """Start one more API process on the same database; its base URL once it is ready."""
        port = free_port()
        proc = _popen(
            ["serve", "--no-worker", "--config", str(self.config), "--port", str(port)],
            self.env,
            self.logs / f"api{len(self.more_apis) + 2}.log",
        )
        self.more_apis.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout=180, proc=proc)
        self.more_urls.append(url)
        return url

    @property
    def urls(self) -> list[str]:
        """Every API process's base URL, the first one's first."""
        return [self.url, *self.more_urls]

    def wait_api(self) -> None:
        assert self.api is not None
        wait_ready(self.url, timeout=180, proc=self.api)

    def start_worker(
        self, *, concurrency: int | None = None, wait: bool = True
    ) -> subprocess.Popen[bytes]:
        self._n += 1
        log = self.logs / f"worker{self._n}.log"
        args = ["worker", "--config", str(self.config)]
        if concurrency:
            args += ["--concurrency", str(concurrency)]
        proc = _popen(args, self.env, log)
        self.workers.append(proc)
        self.log_paths[proc.pid] = log
        if wait:
            self.wait_worker(proc, log)
        return proc

    def wait_worker(self, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}: {tail(log)}")
            if log.exists() and b"worker ready" in log.read_bytes():
                return
            time.sleep(0.05)
        raise TimeoutError(f"worker not ready within {timeout}s: {tail(log)}")

    def is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        log = self.log_paths[proc.pid]
        return proc.poll() is None and log.exists() and b"worker ready" in log.read_bytes()

    def ready_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if self.is_ready(w)]

    def worker(self, pid: int) -> subprocess.Popen[bytes]:
        return next(w for w in self.workers if w.pid == pid)

    def alive_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def signal(self, proc: subprocess.Popen[bytes], sig: int) -> float:
        """Send `sig` to a worker; returns the wall-clock time it was sent."""
        sent = time.time()
        os.kill(proc.pid, sig)
        if sig == signal.SIGKILL:
            proc.wait(10)
        return sent

    def close(self) -> None:
        for proc in [*self.workers, *([self.api] if self.api else []), *self.more_apis]:
            stop_process(proc)

    def dump_logs(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            out.append(f"--- {path.name} ---\n{tail(path, lines)}")
        return "\n".join(out)

    # database --------------------------------------------------------------

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def cluster(
    logs: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    concurrency: int | None = None,
    config: Path = GRAPHS,
    database: str | None = None,
) -> Iterator[Cluster]:
    """A scratch database (or `database`) with the fault tables, an API process and `workers`
    workers."""
    logs.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(database) if database else scratch_database() as db:
        c = Cluster(db, logs, env or {}, config)
        try:
            c.migrate()
            c.sql(TABLES)
            c.start_api(wait=False)
            procs = [c.start_worker(concurrency=concurrency, wait=False) for _ in range(workers)]
            c.wait_api()
            for proc in procs:
                c.wait_worker(proc, c.log_paths[proc.pid])
            yield c
        except BaseException:
            print(c.dump_logs())
            raise
        finally:
            c.close()


class RedisServer:
    """A throwaway `redis-server` on a free loopback port, without persistence."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        with (self.logs / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {tail(self.logs / 'redis.log')}")
            try:
                with socket_to(self.port) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError("redis-server did not answer PING")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def socket_to(port: int) -> Any:
    import socket

    return socket.create_connection(("127.0.0.1", port), timeout=1.0)


# SSE ---------------------------------------------------------------------------------


class SSE(dict[str, Any]):
    """One server-sent event: `event`, `data` (raw text) and `id` (or None)."""


async def sse_events(response: Any) -> Any:
    """Parse an httpx streaming response into SSE events (comments and pings skipped)."""
    event: dict[str, Any] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or event:
                yield SSE(
                    event=event.get("event", "message"), data="\n".join(data), id=event.get("id")
                )
            event, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name in ("event", "id"):
            event[name] = value
    if data or event:
        yield SSE(event=event.get("event", "message"), data="\n".join(data), id=event.get("id"))


class PrivatePostgres:
    """A Postgres cluster of the test's own (the pgserver wheel's binaries) on a free loopback
    port, so a test may restart or stop it without disturbing anyone else's database."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{pg_cluster.PASSWORD}@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def _pg_ctl(self, action: str, mode: str = "fast") -> float:
        """Run `pg_ctl action`; returns the wall-clock time it returned (the server up/down)."""
        subprocess.run(
            pg_cluster.pg_ctl_command(self.base, action, self.port, mode),
            user=pg_cluster.cluster_user(),
            check=True,
            capture_output=True,
            timeout=60,
        )
        return time.time()

    def init(self) -> None:
        subprocess.run(
            pg_cluster.initdb_command(self.base),
            user=pg_cluster.cluster_user(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        # Room for two workers, the API and the graphs' own connections.
        with (self.base / "data" / "postgresql.conf").open("a") as conf:
            conf.write("\nmax_connections = 200\nfsync = off\n")
        self.start()

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def start(self) -> float:
        return self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> float:
        return self._pg_ctl("stop", mode)

    def restart(self, mode: str = "fast") -> float:
        """`pg_ctl restart -m <mode>`: every backend terminated; returns when it accepts again."""
        return self._pg_ctl("restart", mode)

    def close(self) -> None:
        if (self.base / "data" / "postmaster.pid").exists():
            subprocess.run(
                pg_cluster.pg_ctl_command(self.base, "stop", self.port, "immediate"),
                user=pg_cluster.cluster_user(),
                check=False,
                capture_output=True,
                timeout=60,
            )
