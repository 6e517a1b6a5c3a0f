"""PayloadLimits and BodyGuard without a server: field sizes, and what the app is handed."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from server.core.settings import Settings
from server.http.asgi import BODY_STATE, JSON_STATE
from server.http.middleware.limits import BodyGuard, PayloadLimits
from server.http.route_table import Route, classify

LIMITS = PayloadLimits(metadata_bytes=32, input_bytes=64, stream_modes=2)
RUNS = classify("POST", "/threads/t/runs")
THREADS = classify("POST", "/threads")


@pytest.mark.parametrize(
    ("data", "route", "problem"),
    [
        ({"metadata": {"k": "v"}}, THREADS, None),
        ({"metadata": {"k": "v" * 40}}, THREADS, "metadata exceeds 32 bytes of JSON"),
        ([{"metadata": {}}, {"metadata": {"k": "v" * 40}}], THREADS, "metadata exceeds 32"),
        ({"input": {"text": "x" * 100}}, THREADS, None),  # only run creation bounds input
        ({"input": {"text": "x" * 100}}, RUNS, "run input exceeds 64 bytes of JSON"),
        ({"input": {"a": "x" * 30}, "command": {"b": "y" * 30}}, RUNS, "run input exceeds"),
        ({"stream_mode": ["values", "updates"]}, RUNS, None),
        ({"stream_mode": ["values", "updates", "debug"]}, RUNS, "at most 2 stream modes"),
        ({"stream_mode": "values"}, RUNS, None),
        (["not an object", 3, None], RUNS, None),
        ("a string body", RUNS, None),
    ],
)
def test_payload_problems(data: object, route: Route, problem: str | None) -> None:
    found = LIMITS.problem(data, route)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


class Recorder:
    """An ASGI app that records the scope state and body it is handed, and answers 200."""

    def __init__(self) -> None:
        self.state: dict[str, object] = {}
        self.body = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.state = dict(scope.get("state") or {})
        message = await receive()
        self.body = message.get("body", b"")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def guard(app: Recorder) -> BodyGuard:
    settings = Settings(
        environment="test",
        max_body_bytes=4096,
        max_metadata_bytes=256,
        max_run_input_bytes=1024,
        max_stream_modes=2,
    )
    return BodyGuard(app, settings=settings)


async def request(
    app: BodyGuard, method: str, path: str, *, content: bytes | None = None, json: object = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.request(method, path, content=content, json=json)


async def test_a_json_body_is_parsed_once_and_replayed() -> None:
    app = Recorder()
    response = await request(guard(app), "POST", "/threads", json={"metadata": {"k": 1}})
    assert response.status_code == 200
    assert app.state[JSON_STATE] == {"metadata": {"k": 1}}
    assert app.state[BODY_STATE] == app.body == b'{"metadata":{"k":1}}'


async def test_a_body_that_is_not_json_is_refused_before_the_app() -> None:
    app = Recorder()
    for body, loc in [(b"{not json", ["body", 1]), (b'{"a": "\\ud800"}', ["body", "a"])]:
        response = await request(guard(app), "POST", "/threads", content=body)
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        (error,) = response.json()["detail"]
        assert error["loc"] == loc
        assert error["type"] == "json_invalid"
    assert app.state == {}


async def test_a_field_the_parser_refuses_does_not_skip_the_size_checks() -> None:
    """Once, a body orjson could not parse skipped every check, and the route's lenient
    parser dropped the bad field and took the rest."""
    app = Recorder()
    big = '"' + "x" * 2000 + '"'
    for path, body in [
        ("/runs", '{"junk": "\\ud800", "input": {"text": ' + big + "}}"),
        ("/threads", '{"metadata": {"k": ' + big + '}, "junk": "\\udfff"}'),
    ]:
        response = await request(guard(app), "POST", path, content=body.encode())
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "junk"]
    assert app.state == {}


async def test_a_nul_in_the_url_is_refused_before_the_app() -> None:
    app = Recorder()
    for path, loc in [("/threads/a%00b", ["path"]), ("/store/items?key=a%00b", ["query", "key"])]:
        response = await request(guard(app), "GET", path)
        assert response.status_code == 422, path
        assert response.json()["code"] == "validation_error"
        assert response.json()["detail"][0]["loc"] == loc
    assert app.state == {}


async def test_oversized_fields_are_refused_before_the_app() -> None:
    app = Recorder()
    response = await request(guard(app), "POST", "/runs", json={"stream_mode": ["a", "b", "c"]})
    assert response.status_code == 422
    assert response.json() == {"detail": "at most 2 stream modes", "code": "payload_limit"}
    assert app.state == {}


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    response = await request(guard(Recorder()), "POST", "/threads", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert response.json()["code"] == "payload_too_large"


async def test_reads_pass_untouched() -> None:
    app = Recorder()
    response = await request(guard(app), "GET", "/threads/t")
    assert response.status_code == 200
    assert BODY_STATE not in app.state


async def test_a_malformed_content_length_is_a_400() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/threads",
        "headers": [(b"content-length", b"12abc")],
    }
    await guard(Recorder())(scope, receive, send)
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b'{"detail":"invalid Content-Length","code":"bad_request"}'


async def test_a_client_gone_mid_body_gets_no_answer() -> None:
    sent: list[Message] = []
    messages: list[Message] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/threads", "headers": []}
    await guard(Recorder())(scope, receive, send)
    assert sent == []
