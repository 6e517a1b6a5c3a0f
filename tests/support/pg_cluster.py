"""A Postgres cluster of a test's own, from the pgserver wheel's binaries: one that wants a
password (scram-sha-256), which the machine's trust-auth Postgres cannot stand in for."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "right-pw"
"""The password of the cluster's `postgres` role."""


def pg_bin(name: str) -> str:
    """A binary of the pgserver wheel (found without importing it: it warns at import)."""
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def cluster_user() -> str | None:
    """Who runs the cluster: Postgres refuses root, so `nobody` when the tests run as root."""
    return "nobody" if os.geteuid() == 0 else None


def initdb_command(base: Path) -> list[str]:
    """Prepare `base` (world-traversable, owned by the cluster's user); the initdb to run."""
    base.chmod(0o755)
    pwfile = base / "pw"
    pwfile.write_text(f"{PASSWORD}\n")
    user = cluster_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (base, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return [pg_bin("initdb"), "-D", str(base / "data"), "-U", "postgres",
            "--auth=scram-sha-256", f"--pwfile={pwfile}"]  # fmt: skip


def pg_ctl_command(base: Path, action: str, port: int, mode: str = "immediate") -> list[str]:
    """`pg_ctl start` (or `restart`) on 127.0.0.1:`port` (socket in `base`), or `stop`
    (`mode`: immediate, fast or smart; also the shutdown of a restart)."""
    command = [pg_bin("pg_ctl"), "-D", str(base / "data"), "-w"]
    if action in ("start", "restart"):
        shutdown = ["-m", mode] if action == "restart" else []
        return [*command, "-l", str(base / "log"), *shutdown,
                "-o", f"-h 127.0.0.1 -p {port} -k {base}", action]  # fmt: skip
    return [*command, "-m", mode, "stop"]


@contextmanager
def private_cluster(port: int, prefix: str) -> Iterator[Path]:
    """A started cluster on `port` (its base directory), stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))

    def run(command: list[str]) -> None:
        subprocess.run(command, user=cluster_user(), check=True, capture_output=True, timeout=120)

    try:
        run(initdb_command(base))
        run(pg_ctl_command(base, "start", port))
        yield base
    finally:
        if (base / "data" / "postmaster.pid").exists():
            run(pg_ctl_command(base, "stop", port))
        shutil.rmtree(base, ignore_errors=True)
