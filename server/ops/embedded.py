"""Embedded defaults: a local Postgres for `trellis` on a machine that has none.

Only used when `DATABASE_URL` was not set and the default address cannot be used; the
log says why. Data lives under `<embedded_data_dir>/postgres`. Every process using it
(`serve`, `worker`, `keys`...) records its pid in the data directory's handle file; the
last one to leave stops Postgres, on every way out: a normal exit, a startup failure,
SIGINT, SIGTERM or SIGHUP. A handle left by a process that was killed (SIGKILL, a power
cut) names a dead pid; it is dropped at the next start and stop, so it neither keeps
Postgres running forever nor stops it under a live process.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import pwd
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from server.core.settings import ROOT, Settings
from server.db.engine import check_connection

if TYPE_CHECKING:
    from tools.retrieval import IndexLocked

log = logging.getLogger("trellis")

HANDLE_FILE = ".handle_pids.json"
"""pgserver's list of the pids using a data directory."""

SYSTEM_USER = "pgserver"
"""The unprivileged user pgserver runs Postgres as when started by root."""


def ensure_postgres(settings: Settings) -> Settings:
    """The settings to use: unchanged if Postgres answers, else pointing at an embedded one."""
    problem = check_connection(settings.psycopg_url)
    if problem is None:
        return settings
    if "database_url" in settings.model_fields_set:
        raise SystemExit(f"trellis: {problem} (DATABASE_URL; unset it to use an embedded one)")
    data = Path(settings.embedded_data_dir).resolve() / "postgres"
    url = start_embedded(data)
    log.warning(
        f"using an embedded Postgres under {data}: the default address cannot be used "
        f"({problem}); set DATABASE_URL to use a server of your own",
        extra={"data_dir": str(data)},
    )
    return settings.model_copy(update={"database_url": url})


def start_embedded(data: Path) -> str:
    """Start (or join) the embedded Postgres in `data`; returns its URL.

    This process's handle is released, and Postgres stopped when it was the last, at exit
    (SIGTERM and SIGHUP are turned into a normal exit for that; SIGINT already is one).
    """
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # pgserver runs Postgres as an unprivileged user, which it creates when missing.
        created = not _user_exists(SYSTEM_USER)
        log.warning(
            f"running as root: the embedded Postgres runs as the system user {SYSTEM_USER!r}"
            + (", created now with useradd" if created else "")
            + "; run trellis as another user, or set DATABASE_URL, to avoid it"
        )
    _exit_on_signals()
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it narrates every command
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp, fine.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import PostgresServer, get_server

    with PostgresServer._lock:
        dropped = forget_dead_handles(data)
    if dropped:
        log.warning(
            f"dropped the embedded Postgres handles of processes that are gone: {dropped}",
            extra={"data_dir": str(data)},
        )
    # Registered before pgserver registers its own: atexit runs the latest first, so
    # pgserver stops Postgres when this is the last live handle, and `release` catches
    # what it leaves (dead handles, or an exit before pgserver recorded this process).
    atexit.register(release, data)
    server = get_server(data, cleanup_mode="stop")
    return str(server.get_uri())


def release(data: Path) -> None:
    """Drop this process's handle (and dead ones); stop Postgres when no live one is left."""
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        forget_dead_handles(data, also=os.getpid())
        if live_handles(data):
            return
        postmaster = postmaster_pid(data)
        if postmaster is None or not _alive(postmaster):
            return
        log.info("stopping the embedded Postgres", extra={"data_dir": str(data)})
        stop_postgres(data)


def stop_postgres(data: Path) -> None:
    """`pg_ctl stop` (fast: open sessions are ended) on the cluster in `data`."""
    from pgserver._commands import POSTGRES_BIN_PATH

    user = SYSTEM_USER if os.geteuid() == 0 else None
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
        user=user,
        check=False,
        capture_output=True,
        timeout=60,
    )


def read_handles(data: Path) -> list[int]:
    """The pids recorded as using the embedded Postgres in `data`."""
    try:
        pids = json.loads((data / HANDLE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int)] if isinstance(pids, list) else []


def live_handles(data: Path) -> list[int]:
    """The recorded pids whose process still runs."""
    return [pid for pid in read_handles(data) if _alive(pid)]


def forget_dead_handles(data: Path, *, also: int | None = None) -> list[int]:
    """Remove the pids of processes that are gone (and `also`) from the handle file.

    Returns the dead pids removed. Call with pgserver's lock held."""
    pids = read_handles(data)
    dead = [pid for pid in pids if not _alive(pid)]
    keep = [pid for pid in pids if pid not in dead and pid != also]
    if keep != pids:
        (data / HANDLE_FILE).write_text(json.dumps(keep))
    return dead


def postmaster_pid(data: Path) -> int | None:
    """The pid in `data/postmaster.pid`, if any."""
    try:
        first = (data / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first)
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) holds nothing any more.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _exit_on_signals() -> None:
    """Make SIGTERM and SIGHUP end the process through `sys.exit` so atexit handlers run.

    uvicorn captures SIGTERM while serving and re-raises it after a graceful shutdown; with
    the default action that kills the process before atexit, leaving Postgres running."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            try:
                signal.signal(sig, _raise_exit)
            except ValueError:  # not the main thread: whoever owns it handles signals
                return


def _raise_exit(signum: int, _: FrameType | None) -> None:
    sys.exit(128 + signum)


# --- the embedded Qdrant -----------------------------------------------------------------

QDRANT_SERVER_HINT = (
    "`docker run -p 6333:6333 qdrant/qdrant` (compose.yaml's qdrant service) and "
    "QDRANT_URL=http://127.0.0.1:6333 for every process"
)
"""What to run instead of the embedded Qdrant when several processes need vectors."""

_INSTEAD = {
    "serve": f"Two servers need a Qdrant server: {QDRANT_SERVER_HINT}.",
    "worker": (
        "`trellis serve` executes queued runs itself (its embedded worker); separate workers "
        f"need a Qdrant server: {QDRANT_SERVER_HINT}."
    ),
    "ingest": (
        "While `trellis serve` runs, send the files through it: `trellis ingest --server "
        f"http://127.0.0.1:8123 PATH...`; or use a Qdrant server: {QDRANT_SERVER_HINT}."
    ),
}


def qdrant_in_use(error: IndexLocked, command: str) -> str:
    """The one line `trellis <command>` ends with when the embedded Qdrant is taken."""
    return f"trellis: {error}. {_INSTEAD.get(command, '')}".rstrip()


def refuse_shared_qdrant(settings: Settings, *, command: str) -> str | None:
    """Why `trellis <command>` must not start, or None: the graphs it serves need the
    embedded Qdrant and another process has it open (Qdrant's local mode allows one).

    Checked before starting, so the refusal is one line, not a failed startup's traceback."""
    if settings.qdrant_url or not serves_builtin_graphs(settings.graphs_config):
        return None
    from server.builtin_toolbox import qdrant_path
    from tools.retrieval import IndexLocked, embedded_index_holder

    path = qdrant_path(settings)
    held, holder = embedded_index_holder(path)
    return qdrant_in_use(IndexLocked(path, holder), command) if held else None


def serves_builtin_graphs(config: Path) -> bool:
    """Whether the `langgraph.json` at `config` names one of Trellis' own graphs (they need
    the toolbox, and so Qdrant). False for a config that cannot be read: startup says why."""
    from server.graph_host.registry import read_config

    try:
        entries = read_config(config).graphs
    except Exception:  # whatever is wrong with it is reported when the server loads it
        return False
    return any(entry.file.is_relative_to(ROOT / "graphs") for entry in entries)
