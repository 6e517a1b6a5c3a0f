"""The embedded Postgres stops with the last `trellis` process on every way out, and a handle
left by a killed process does not keep it running.

Each command runs in a network namespace of its own (`unshare -n`), where nothing answers at
the default address, so `trellis` falls back to the embedded Postgres exactly as on a machine
without one (needs root or user namespaces; skipped elsewhere).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg_cluster import cluster_user, initdb_command, pg_ctl_command
from tests.support.servers import ROOT, TEST_GRAPHS, free_port


def _can_isolate() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _can_isolate(), reason="needs `unshare -n` (root or user namespaces)"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data directory for the module (initdb once); Postgres is stopped after each test."""
    data = tmp_path_factory.mktemp("embedded")
    yield data
    _kill_postmaster(data / "postgres")


def trellis(*args: str, data: Path, log: Path) -> subprocess.Popen[bytes]:
    """`trellis ARGS` where no Postgres answers at the default address and DATABASE_URL is unset."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"EMBEDDED_DATA_DIR": str(data), "LOG_FORMAT": "text", "LOG_LEVEL": "INFO"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                "unshare",
                "-n",
                "sh",
                "-c",
                'ip link set lo up && exec "$@"',
                "sh",
                sys.executable,
                "-m",
                "server.cli",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def serve(data: Path, log: Path, config: Path = TEST_GRAPHS) -> subprocess.Popen[bytes]:
    return trellis("serve", "--config", str(config), "--port", str(free_port()), data=data, log=log)


def wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} in the log:\n{log.read_text(errors='replace')[-3000:]}")


def postmaster(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def handles(pgdata: Path) -> list[int]:
    path = pgdata / ".handle_pids.json"
    return list(json.loads(path.read_text())) if path.exists() else []


def _kill_postmaster(pgdata: Path) -> None:
    pid = postmaster(pgdata)
    if pid is not None and alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def pgdata(data_dir: Path) -> Iterator[Path]:
    pgdata = data_dir / "postgres"
    yield pgdata
    _kill_postmaster(pgdata)  # a failing test leaves nothing running


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_embedded_postgres(
    sig: signal.Signals, data_dir: Path, pgdata: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    proc = serve(data_dir, log)
    try:
        wait_for(log, "trellis ready", proc)
        pid = postmaster(pgdata)
        assert pid is not None
        assert alive(pid)
        assert proc.pid in handles(pgdata)
        proc.send_signal(sig)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert gone_within(pid, 10), f"Postgres {pid} still runs after {sig.name}:\n{log.read_text()}"
    assert not [p for p in handles(pgdata) if alive(p)]
    text = log.read_text()
    assert "using an embedded Postgres" in text
    assert "refused the connection" in text
    if os.geteuid() == 0:
        assert "runs as the system user 'pgserver'" in text


def test_startup_failure_and_a_plain_exit_stop_it(
    data_dir: Path, pgdata: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "langgraph.json"
    broken.write_text(json.dumps({"graphs": {}}))  # no graph at all: startup fails
    log = tmp_path / "serve.log"
    proc = serve(data_dir, log, config=broken)
    assert proc.wait(120) != 0
    pid = postmaster(pgdata)
    assert pid is None or gone_within(pid, 10), log.read_text()
    assert "using an embedded Postgres" in log.read_text()

    log = tmp_path / "migrate.log"
    migrate = trellis("migrate", data=data_dir, log=log)
    assert migrate.wait(120) == 0, log.read_text()
    assert "schema upgrade done" in log.read_text()
    pid = postmaster(pgdata)
    assert pid is None or gone_within(pid, 10)
    assert not [p for p in handles(pgdata) if alive(p)]


def test_a_killed_servers_handle_neither_blocks_nor_keeps_postgres_running(
    data_dir: Path, pgdata: Path, tmp_path: Path
) -> None:
    log = tmp_path / "first.log"
    first = serve(data_dir, log)
    wait_for(log, "trellis ready", first)
    first.kill()  # SIGKILL: no cleanup at all
    first.wait(10)
    left = postmaster(pgdata)
    assert left is not None
    assert alive(left)
    assert handles(pgdata) == [first.pid]  # the stale handle the next start finds

    log = tmp_path / "second.log"
    second = serve(data_dir, log)
    try:
        wait_for(log, "trellis ready", second)
        assert second.pid in handles(pgdata)
        second.terminate()
        second.wait(30)
    finally:
        if second.poll() is None:
            second.kill()
    assert gone_within(left, 10), log.read_text()
    assert handles(pgdata) == []
    assert f"processes that are gone: [{first.pid}]" in log.read_text()


def test_a_password_protected_postgres_at_the_default_address_is_named_in_the_fallback(
    data_dir: Path, pgdata: Path, tmp_path: Path
) -> None:
    base = Path(tempfile.mkdtemp(prefix="trellis-pw-"))
    try:
        subprocess.run(initdb_command(base), user=cluster_user(), check=True, capture_output=True)
        as_user = ["runuser", "-u", user, "--"] if (user := cluster_user()) else []
        start = shlex.join([*as_user, *pg_ctl_command(base, "start", 5432)])
        stop = shlex.join([*as_user, *pg_ctl_command(base, "stop", 5432)])
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env |= {"EMBEDDED_DATA_DIR": str(data_dir)}
        done = subprocess.run(
            [
                "unshare",
                "-n",
                "sh",
                "-c",
                f'ip link set lo up && {start} >/dev/null && "$@"; rc=$?; {stop}; exit $rc',
                "sh",
                sys.executable,
                "-m",
                "server.cli",
                "migrate",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    assert "using an embedded Postgres" in done.stderr
    assert (
        "Postgres at postgresql://postgres@127.0.0.1:5432/postgres asks for a password"
        in done.stderr
    )
    pid = postmaster(pgdata)
    assert pid is None or gone_within(pid, 10)
