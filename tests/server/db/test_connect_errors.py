"""Each way a Postgres connection fails gets its own one-line message, password masked.

Against the machine's Postgres (trust auth) for a missing database, a missing role and a
closed port; a socket that never answers for the timeout; and a cluster of the test's own,
started from the pgserver wheel's binaries with scram-sha-256, for a wrong and a missing
password.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from server.db.engine import check_connection, connect_problem, redact_url
from tests.support.pg_cluster import PASSWORD, private_cluster
from tests.support.servers import ADMIN_URL, ROOT, free_port

BASE = ADMIN_URL.rsplit("/", 1)[0]  # postgresql://postgres@127.0.0.1:5432


def test_a_missing_database() -> None:
    problem = check_connection(f"{BASE}/trellis_no_such_database")
    assert problem is not None
    assert "has no database 'trellis_no_such_database' (3D000)" in problem
    assert "createdb trellis_no_such_database" in problem


def test_a_missing_role() -> None:
    problem = check_connection(ADMIN_URL.replace("postgres@", "trellis_no_such_role@", 1))
    assert problem is not None
    assert "has no role 'trellis_no_such_role'" in problem


def test_a_closed_port_and_the_password_masked() -> None:
    url = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/postgres"
    problem = check_connection(url)
    assert problem is not None
    assert "refused the connection: nothing listens there" in problem
    assert "s3cret-pw" not in problem
    assert f"postgresql://postgres:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in problem
    assert "\n" not in problem


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        problem = check_connection(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout=1)
    assert problem is not None
    assert "did not answer in time (connection timeout)" in problem


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.errors.InvalidPassword("password authentication failed"), "(28P01)"),
        (psycopg.errors.InvalidAuthorizationSpecification("no pg_hba.conf entry"), "(28000)"),
        (psycopg.errors.InvalidCatalogName('database "x" does not exist'), "(3D000)"),
    ],
)
def test_errors_that_carry_a_sqlstate_are_named_by_it(error: psycopg.Error, expected: str) -> None:
    problem = connect_problem(error, "postgresql://u:pw@db.example:5432/app")
    assert expected in problem
    assert "postgresql://u:***@db.example:5432/app" in problem


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact_url("postgresql://h/d?password=x") == "postgresql://h/d?password=x"


# --- a password-protected cluster of the test's own -----------------------------------------


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[int]:
    """A Postgres on a free loopback port that wants the password `right-pw` for `postgres`."""
    port = free_port()
    with private_cluster(port, "trellis-pw-"):
        yield port


def test_a_wrong_password(password_cluster: int) -> None:
    good = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{password_cluster}/postgres"
    assert check_connection(good) is None
    problem = check_connection(good.replace(PASSWORD, "wrong-pw"))
    assert problem is not None
    assert "refused the password (28P01)" in problem
    assert "wrong-pw" not in problem
    assert "postgres:***@" in problem


def test_no_password_for_a_server_that_wants_one(password_cluster: int) -> None:
    problem = check_connection(f"postgresql://postgres@127.0.0.1:{password_cluster}/postgres")
    assert problem is not None
    assert "asks for a password and the URL gives none" in problem


def test_trellis_says_what_is_wrong_with_database_url_in_one_line() -> None:
    url = f"{BASE.replace('postgres@', 'postgres:hunter2@', 1)}/trellis_no_such_database"
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "migrate"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "trellis: Postgres at postgresql://postgres:***@127.0.0.1:5432/trellis_no_such_database "
        "has no database 'trellis_no_such_database' (3D000): create it (createdb "
        "trellis_no_such_database) or name another in the URL (DATABASE_URL; unset it to use "
        "an embedded one)"
    ]
