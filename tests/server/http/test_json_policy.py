"""The JSON policy at the edge (`server.core.encoding`): what Postgres, orjson or a reader
could not give back is refused with a 422 naming the field, on every resource, before
anything is stored; the owner's listings keep answering and the connection stays open."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.support.api import assert_error

SURROGATE = '"\\ud800"'
"""A lone surrogate as JSON text: orjson refuses it, `json.loads` takes it."""


def nested(depth: int) -> Any:  # Any: a JSON value of the given depth
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


def nested_text(depth: int) -> str:
    """`nested(depth)` as JSON text (orjson writes at most 254 levels)."""
    return '{"n": ' * depth + '"leaf"' + "}" * depth


def raw(template: str, **values: str) -> bytes:
    """A JSON body with `%(name)s` holes for JSON text orjson cannot write (a lone surrogate,
    a value nested past 254 levels)."""
    return (template % values).encode()


@pytest.fixture
async def conn(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """One keep-alive connection: a 500 would close it, which `Probe` notices."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=server_url, timeout=30, limits=limits) as client:
        yield client


class Probe:
    """Sends requests on one connection and checks they all use it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.stream: object = None

    async def send(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        headers = {"content-type": "application/json"} if body is not None else {}
        response = await self.http.request(method, path, content=body, headers=headers)
        stream = response.extensions["network_stream"]
        if self.stream is None:
            self.stream = stream
        assert stream is self.stream, f"{method} {path} closed the connection"
        assert response.headers.get("connection") != "close", response.headers
        return response

    async def refused(self, method: str, path: str, body: bytes | None, where: str) -> None:
        """A 422 validation error whose first entry, `loc: msg`, mentions `where`."""
        response = await self.send(method, path, body)
        error = assert_error(response, 422, "validation_error")
        assert where in located(error["detail"][0]), (method, path, error)


def located(error: dict[str, Any]) -> str:
    """A validation error entry as `body.metadata.a: msg`."""
    loc = error["loc"]
    path = "".join(
        f"[{k}]" if isinstance(k, int) else (f".{k}" if i else k) for i, k in enumerate(loc)
    )
    return f"{path}: {error['msg']}"


async def listings_answer(probe: Probe, tid: str) -> None:
    """Everything the owner lists or searches still answers 200."""
    for method, path, body in [
        ("POST", "/threads/search", {}),
        ("POST", "/threads/search", {"select": ["thread_id", "metadata", "values"]}),
        ("POST", "/threads/count", {}),
        ("GET", f"/threads/{tid}", None),
        ("GET", f"/threads/{tid}/state", None),
        ("GET", f"/threads/{tid}/history", None),
        ("GET", f"/threads/{tid}/runs", None),
        ("POST", "/assistants/search", {}),
        ("POST", "/store/items/search", {"namespace_prefix": ["policy"]}),
        ("POST", "/store/namespaces", {}),
    ]:
        response = await probe.send(method, path, orjson.dumps(body) if body is not None else None)
        assert response.status_code == 200, (method, path, response.text)


@pytest.fixture
async def thread(conn: httpx.AsyncClient) -> str:
    created = await conn.post("/threads", json={"metadata": {"policy": "yes"}})
    tid: str = created.json()["thread_id"]
    ran = await conn.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {}})
    assert ran.status_code == 200, ran.text
    return tid


async def test_lone_surrogates_are_refused_naming_the_field(
    conn: httpx.AsyncClient, thread: str
) -> None:
    probe = Probe(conn)
    s = SURROGATE
    cases = [
        ("POST", "/threads", raw('{"metadata": {"a": %(s)s}}', s=s), "body.metadata.a"),
        ("POST", "/threads", raw('{"metadata": {%(s)s: 1}}', s=s), "body.metadata"),
        ("PATCH", f"/threads/{thread}", raw('{"metadata": {"b": [%(s)s]}}', s=s), "metadata.b"),
        ("POST", "/threads/search", raw('{"metadata": {"a": %(s)s}}', s=s), "body.metadata.a"),
        ("POST", f"/threads/{thread}/state", raw('{"values": {"text": %(s)s}}', s=s), "values"),
        (
            "POST",
            f"/threads/{thread}/runs/wait",
            raw('{"assistant_id": "echo", "input": {"text": %(s)s}}', s=s),
            "body.input.text",
        ),
        (
            "POST",
            "/runs/wait",
            raw('{"assistant_id": "echo", "config": {"configurable": {"x": %(s)s}}}', s=s),
            "body.config.configurable.x",
        ),
        (
            "POST",
            "/assistants",
            raw('{"graph_id": "echo", "context": {"x": %(s)s}}', s=s),
            "body.context.x",
        ),
        (
            "PUT",
            "/store/items",
            raw('{"namespace": ["policy", %(s)s], "key": "k", "value": {}}', s=s),
            "body.namespace[1]",
        ),
        (
            "PUT",
            "/store/items",
            raw('{"namespace": ["policy"], "key": "k", "value": {"v": %(s)s}}', s=s),
            "body.value.v",
        ),
        ("POST", "/store/items/search", raw('{"query": %(s)s}', s=s), "body.query"),
        (
            "POST",
            "/documents/ingest",
            raw('{"documents": [{"source": "a", "text": %(s)s}]}', s=s),
            "body.documents[0].text",
        ),
    ]
    for method, path, body, where in cases:
        await probe.refused(method, path, body, where)
    await listings_answer(probe, thread)


async def test_numbers_and_nul_that_do_not_round_trip_are_refused(
    conn: httpx.AsyncClient, thread: str
) -> None:
    probe = Probe(conn)
    cases: list[tuple[str, str, bytes, str]] = [
        ("POST", "/threads", b'{"metadata": {"a": 1e308}}', "body.metadata.a"),
        ("POST", "/threads", b'{"metadata": {"a": -1e19}}', "body.metadata.a"),
        ("POST", "/threads", b'{"metadata": {"a": 9223372036854775808}}', "body.metadata.a"),
        ("POST", "/threads", b'{"metadata": {"a": NaN}}', "body.metadata.a"),
        ("POST", "/threads", b'{"metadata": {"a": 1e999}}', "body"),
        ("PATCH", f"/threads/{thread}", b'{"metadata": {"a": 1e300}}', "body.metadata.a"),
        ("POST", "/assistants", b'{"graph_id": "echo", "metadata": {"a": 2e19}}', "metadata.a"),
        (
            "POST",
            f"/threads/{thread}/runs",
            b'{"assistant_id": "echo", "input": {"text": "x"}, "metadata": {"m": -1e300}}',
            "body.metadata.m",
        ),
        ("POST", "/threads", orjson.dumps({"metadata": {"a": "x\x00y"}}), "body.metadata.a"),
        ("POST", "/threads", orjson.dumps({"metadata": {"k\x00": 1}}), "key"),
        (
            "PUT",
            "/store/items",
            orjson.dumps({"namespace": ["policy"], "key": "k\x00", "value": {}}),
            "body.key",
        ),
        (
            "PUT",
            "/store/items",
            orjson.dumps({"namespace": ["policy"], "key": "k", "value": {"v": 1e308}}),
            "body.value.v",
        ),
    ]
    for method, path, body, where in cases:
        await probe.refused(method, path, body, where)
    await listings_answer(probe, thread)


async def test_deep_values_are_refused(conn: httpx.AsyncClient, thread: str) -> None:
    probe = Probe(conn)
    cases = [
        ("POST", f"/threads/{thread}/state", '{"values": {"text": %(v)s}}', 200),
        ("PUT", "/store/items", '{"namespace": ["policy"], "key": "deep", "value": %(v)s}', 900),
        ("POST", "/threads", '{"metadata": %(v)s}', 150),
        ("POST", f"/threads/{thread}/runs/wait", '{"assistant_id": "echo", "input": %(v)s}', 120),
        ("POST", "/store/items/search", '{"filter": %(v)s}', 101),
    ]
    for method, path, template, depth in cases:
        body = raw(template, v=nested_text(depth))
        await probe.refused(method, path, body, "nested deeper than 100 levels")
    # What fits is stored and read back whole.
    ok = {"namespace": ["policy"], "key": "deep", "value": nested(95)}
    assert (await probe.send("PUT", "/store/items", orjson.dumps(ok))).status_code == 204
    got = await probe.send("GET", "/store/items?namespace=policy&key=deep")
    assert got.json()["value"] == nested(95)
    state = raw('{"values": {"text": %(v)s}}', v=nested_text(97))
    assert (await probe.send("POST", f"/threads/{thread}/state", state)).status_code == 200
    got = await probe.send("GET", f"/threads/{thread}/state")
    assert got.json()["values"]["text"] == nested(97)
    await listings_answer(probe, thread)


async def test_store_ttl_is_bounded(conn: httpx.AsyncClient, thread: str) -> None:
    probe = Probe(conn)
    for ttl in (1e308, 5e-324, 0, -1, 1e10):
        body = orjson.dumps({"namespace": ["policy"], "key": "t", "value": {}, "ttl": ttl})
        await probe.refused("PUT", "/store/items", body, "ttl")
    body = orjson.dumps({"namespace": ["policy"], "key": "t", "value": {"x": 1}, "ttl": 5})
    assert (await probe.send("PUT", "/store/items", body)).status_code == 204
    await listings_answer(probe, thread)


async def test_paths_and_queries_are_checked(conn: httpx.AsyncClient, thread: str) -> None:
    probe = Probe(conn)
    await probe.refused("GET", f"/threads/{thread}/state/abc%00def", None, "path")
    await probe.refused("GET", "/store/items?namespace=policy&key=k%00", None, "query.key")
    await probe.refused("GET", "/store/items?namespace=pol%00icy&key=k", None, "query.namespace")
    await probe.refused("GET", f"/threads/{thread}/runs?offset=1e20", None, "offset")
    await probe.refused(
        "GET", f"/threads/{thread}/runs?offset=100000000000000000000", None, "offset"
    )
    await probe.refused("GET", f"/threads/{thread}/runs?limit=1e20", None, "limit")
    await probe.refused("GET", "/assistants/echo/graph?xray=100000000000000000000", None, "xray")
    await probe.refused("DELETE", f"/threads/{uuid.uuid4()}%00", None, "path")
    await listings_answer(probe, thread)


async def test_a_bad_field_no_longer_hides_the_rest_of_the_body(
    conn: httpx.AsyncClient, thread: str
) -> None:
    """The body the guard cannot parse is refused, so its size checks cannot be skipped."""
    probe = Probe(conn)
    big = orjson.dumps({"k": "x" * 200_000}).decode()
    body = raw('{"junk": %(s)s, "metadata": %(big)s}', s=SURROGATE, big=big)
    await probe.refused("POST", "/threads", body, "body.junk")
    body = raw('{"metadata": %(big)s, "junk": %(s)s}', s=SURROGATE, big=big)
    await probe.refused("PATCH", f"/threads/{thread}", body, "body.junk")
    found = (await probe.send("POST", "/threads/search", b'{"limit": 1000}')).json()
    assert all(len(orjson.dumps(t["metadata"])) < 65_536 for t in found)
    await listings_answer(probe, thread)


async def test_json_without_a_content_type_still_works(conn: httpx.AsyncClient) -> None:
    response = await conn.post("/threads", content=b'{"metadata": {"curl": true}}')
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"curl": True}
    refused = await conn.post("/threads", content=b"{not json")
    error = assert_error(refused, 422, "validation_error")
    assert error["detail"][0]["type"] == "json_invalid"


async def test_what_fits_round_trips(conn: httpx.AsyncClient, thread: str) -> None:
    """The bounds are where storage stops, not before: edge values are stored and read back."""
    metadata = {
        "big": 9223372036854775807,
        "small": -9223372036854775807,
        "float": 9.2e18,
        "tiny": 5e-324,
        "text": "héllo \U0001f600",
        "deep": nested(90),
    }
    created = await conn.post("/threads", json={"metadata": metadata})
    assert created.status_code == 200, created.text
    tid = created.json()["thread_id"]
    found = await conn.post("/threads/search", json={"ids": [tid]})
    assert found.status_code == 200, found.text
    assert found.json()[0]["metadata"] == metadata
