"""Infrastructure faults are told apart from a graph's own errors: by type, and by whether
Trellis (or LangGraph's savers) or the graph's own code made the call that failed."""

from __future__ import annotations

from pathlib import Path

import psycopg
import psycopg_pool
import pytest
import sqlalchemy.exc
from redis import exceptions as redis_errors

import server.db.checkpoints
from server.db.outages import infrastructure_fault
from tests.support.servers import ROOT

TRELLIS = server.db.checkpoints.__file__
GRAPH = str(ROOT / "graphs" / "some_graph.py")


def raised_in(filename: str, error: BaseException) -> BaseException:
    """`error`, raised by code that the traceback places in `filename`."""
    code = compile("raise ERROR\n", filename, "exec")
    try:
        exec(code, {"ERROR": error.with_traceback(None)})  # the cases are shared
    except BaseException as caught:
        return caught
    raise AssertionError("not raised")


FAULTS = [
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg.errors.SerializationFailure("could not serialize access"),
    psycopg.OperationalError("the connection is closed"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 10.00 sec"),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    redis_errors.ConnectionError("Connection refused"),
]


@pytest.mark.parametrize("error", FAULTS, ids=lambda e: type(e).__name__)
def test_faults_met_by_trellis_are_infrastructure(error: Exception) -> None:
    fault = infrastructure_fault(raised_in(TRELLIS, error))
    assert fault == f"{type(error).__name__}: {error}"


@pytest.mark.parametrize("error", FAULTS[:3], ids=lambda e: type(e).__name__)
def test_the_same_faults_raised_by_a_graphs_own_code_are_its_errors(error: Exception) -> None:
    assert infrastructure_fault(raised_in(GRAPH, error)) is None


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad input"),
        psycopg.errors.UniqueViolation("duplicate key"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_are_not_infrastructure(error: Exception) -> None:
    assert infrastructure_fault(raised_in(TRELLIS, error)) is None


def test_a_wrapped_fault_is_found_through_its_cause() -> None:
    inner = raised_in(TRELLIS, psycopg.errors.AdminShutdown("terminating connection"))
    outer = RuntimeError("write failed")
    outer.__cause__ = inner
    assert infrastructure_fault(outer) == "AdminShutdown: terminating connection"


def test_a_refused_connection_is_a_fault_only_when_trellis_asked_for_it() -> None:
    from tests.support.servers import ADMIN_URL, free_port

    url = ADMIN_URL.rsplit(":", 1)[0] + f":{free_port()}/postgres"
    connect = "import psycopg\npsycopg.connect(URL, connect_timeout=2)\n"
    errors = []
    for where in (TRELLIS, GRAPH):
        with pytest.raises(psycopg.OperationalError) as caught:
            exec(compile(connect, where, "exec"), {"URL": url})
        errors.append(caught.value)
    assert Path(TRELLIS).name == "checkpoints.py"
    by_trellis, by_graph = (infrastructure_fault(error) for error in errors)
    assert by_trellis is not None
    assert by_trellis.startswith("OperationalError: ")
    assert by_graph is None
