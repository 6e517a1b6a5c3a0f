"""route_table.classify: what the security middlewares decide before FastAPI routes a request."""

from __future__ import annotations

import pytest

from server.http.route_table import DOCS_PATHS, PUBLIC_PATHS, Route, classify

T = "0b7e6c1e-7d4e-4a43-9d59-0a1b2c3d4e5f"
R = "1f2e3d4c-5b6a-4978-8a9b-aabbccddeeff"
A = "echo"


@pytest.mark.parametrize(
    ("method", "path", "resource", "actions", "rate_class", "streams"),
    [
        ("POST", "/assistants", "assistants", ("create",), "write", False),
        ("POST", "/assistants/search", "assistants", ("search",), "read", False),
        ("GET", f"/assistants/{A}", "assistants", ("read",), "read", False),
        ("PATCH", f"/assistants/{A}", "assistants", ("update",), "write", False),
        ("DELETE", f"/assistants/{A}", "assistants", ("delete",), "write", False),
        ("GET", f"/assistants/{A}/schemas", "assistants", ("read",), "read", False),
        ("GET", f"/assistants/{A}/subgraphs/ns", "assistants", ("read",), "read", False),
        ("POST", f"/assistants/{A}/versions", "assistants", ("read",), "read", False),
        ("POST", f"/assistants/{A}/latest", "assistants", ("update",), "write", False),
        ("POST", "/threads", "threads", ("create",), "write", False),
        ("POST", "/threads/prune", "threads", ("delete",), "write", False),
        ("POST", f"/threads/{T}/copy", "threads", ("read", "create"), "write", False),
        ("GET", f"/threads/{T}/state", "threads", ("read",), "read", False),
        ("POST", f"/threads/{T}/state", "threads", ("update",), "write", False),
        ("GET", f"/threads/{T}/state/some-checkpoint", "threads", ("read",), "read", False),
        ("POST", f"/threads/{T}/history", "threads", ("read",), "read", False),
        ("GET", f"/threads/{T}/runs", "threads", ("read",), "read", False),
        ("POST", f"/threads/{T}/runs", "threads", ("create_run",), "runs", False),
        ("POST", f"/threads/{T}/runs/stream", "threads", ("create_run",), "runs", True),
        ("POST", f"/threads/{T}/runs/wait", "threads", ("create_run",), "runs", True),
        ("GET", f"/threads/{T}/runs/{R}/join", "threads", ("read",), "read", True),
        ("GET", f"/threads/{T}/runs/{R}/stream", "threads", ("read",), "read", True),
        ("DELETE", f"/threads/{T}/runs/{R}", "threads", ("delete",), "write", False),
        ("POST", f"/threads/{T}/runs/{R}/cancel", "threads", ("update",), "write", False),
        ("POST", "/runs", "threads", ("create_run",), "runs", False),
        ("POST", "/runs/batch", "threads", ("create_run",), "runs", False),
        ("POST", "/runs/wait", "threads", ("create_run",), "runs", True),
        ("POST", "/runs/cancel", "threads", ("update",), "write", False),
        ("PUT", "/store/items", "store", ("put",), "write", False),
        ("GET", "/store/items", "store", ("get",), "read", False),
        ("DELETE", "/store/items", "store", ("delete",), "write", False),
        ("POST", "/store/items/search", "store", ("search",), "read", False),
        ("POST", "/store/namespaces", "store", ("list_namespaces",), "read", False),
    ],
)
def test_known_routes(
    method: str,
    path: str,
    resource: str,
    actions: tuple[str, ...],
    rate_class: str,
    streams: bool,
) -> None:
    route = classify(method, path)
    assert (route.resource, route.actions, route.rate_class, route.streams) == (
        resource,
        actions,
        rate_class,
        streams,
    )
    assert route.reads_only == (rate_class == "read")
    assert route.creates_runs == (rate_class == "runs")


def test_path_ids_are_captured() -> None:
    route = classify("GET", f"/threads/{T}/runs/{R}")
    assert (route.thread_id, route.run_id, route.assistant_id) == (T, R, None)
    assert classify("GET", f"/assistants/{A}/graph").assistant_id == A
    assert classify("POST", "/runs").thread_id is None


def test_counts_answer_an_integer() -> None:
    assert classify("POST", "/threads/count").counts
    assert classify("POST", "/assistants/count").counts
    assert not classify("POST", "/threads/search").counts


def test_head_is_a_get_and_methods_are_case_insensitive() -> None:
    assert classify("HEAD", f"/threads/{T}") == classify("GET", f"/threads/{T}")
    assert classify("get", f"/threads/{T}").actions == ("read",)


def test_a_cancel_that_waits_streams() -> None:
    path = f"/threads/{T}/runs/{R}/cancel"
    assert not classify("POST", path).streams
    assert not classify("POST", path, b"wait=0").streams
    assert classify("POST", path, b"wait=1").streams
    assert classify("POST", path, b"action=rollback&wait=true").streams
    assert not classify("POST", path, b"nowait=1").streams


@pytest.mark.parametrize(
    ("method", "path", "reads_only"),
    [
        ("GET", "/ok", True),
        ("GET", "/no/such/route", True),
        ("POST", "/no/such/route", False),
        ("PUT", f"/threads/{T}", False),  # a method the route does not answer
        ("POST", f"/threads/{T}/runs/{R}/join", False),
    ],
)
def test_unknown_routes_read_only_when_they_get(method: str, path: str, reads_only: bool) -> None:
    route = classify(method, path)
    assert route == Route(reads_only=reads_only)
    assert route.resource is None
    assert route.actions == ()
    assert route.rate_class == ("read" if reads_only else "write")


def test_docs_are_public_and_api_routes_are_not() -> None:
    assert DOCS_PATHS <= PUBLIC_PATHS
    assert {"/ok", "/info", "/openapi.json"} <= PUBLIC_PATHS
    assert "/threads" not in PUBLIC_PATHS
