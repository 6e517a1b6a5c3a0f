"""Odd requests to the approval and store routes: a JSON 4xx (or 200), never a 500."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import assert_error

NIL = "00000000-0000-0000-0000-000000000000"


async def test_odd_requests_never_fail_the_server(http: httpx.AsyncClient) -> None:
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/approvals?limit=0", None),
        ("GET", "/approvals?limit=99999999999999999999", None),
        ("GET", "/approvals?offset=99999999999999999999", None),
        ("GET", "/approvals?offset=-1", None),
        ("GET", "/approvals?thread_id=not-a-uuid", None),
        ("GET", "/approvals?assistant_id=" + "x" * 100, None),
        ("GET", f"/approvals/{NIL}", None),
        ("POST", "/approvals/not-a-uuid/decision", {"decision": "approve"}),
        ("POST", f"/approvals/{NIL}/decision", {"decision": "approve"}),
        ("POST", f"/approvals/{NIL}/decision", [1, 2]),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {"big": 2**70}}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "index": "yes"}),
        ("PUT", "/store/items", {"namespace": "a.b", "key": "k", "value": {}}),
        ("GET", "/store/items?namespace=&key=k", None),
        ("GET", "/store/items?namespace=a&key=" + "k" * 5000, None),
        ("POST", "/store/items/search", {"limit": 10**20}),
        ("POST", "/store/items/search", {"offset": -1}),
        ("POST", "/store/items/search", {"filter": {"big": 2**70}}),
        ("POST", "/store/items/search", {"filter": "not an object"}),
        ("POST", "/store/namespaces", {"max_depth": 0}),
        ("POST", "/store/namespaces", {"limit": 10**20}),
        ("DELETE", "/store/items", {"namespace": ["a"]}),
    ]
    offenders = []
    for method, path, body in requests:
        response = await http.request(method, path, json=body)
        if response.status_code >= 500 or "Traceback" in response.text:
            offenders.append((method, path, response.status_code, response.text[:200]))
        elif response.status_code >= 400:
            assert_error(response, response.status_code)
    assert offenders == []
