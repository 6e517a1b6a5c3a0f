"""RequestTimeout: a 504 for a response that has not started in time, and nothing else."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from server.http.middleware.limits import RequestTimeout


def slow_app(*, before: float, after: float = 0.0, fail: BaseException | None = None) -> ASGIApp:
    """An ASGI app that waits `before` starting its response and `after` before its body."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(before)
        if fail is not None:
            raise fail
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(after)
        await send({"type": "http.response.body", "body": b"done"})

    return app


async def call(app: RequestTimeout, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.request(method, path)


async def test_a_response_not_started_in_time_is_a_504() -> None:
    response = await call(RequestTimeout(slow_app(before=2.0), seconds=0.1), "GET", "/threads")
    assert response.status_code == 504
    assert response.json()["code"] == "timeout"


async def test_a_started_response_is_left_to_finish() -> None:
    app = RequestTimeout(slow_app(before=0.0, after=0.3), seconds=0.1)
    response = await call(app, "GET", "/threads")
    assert (response.status_code, response.content) == (200, b"done")


async def test_streaming_routes_have_no_deadline() -> None:
    app = RequestTimeout(slow_app(before=0.3), seconds=0.1)
    response = await call(app, "POST", "/runs/wait")
    assert (response.status_code, response.content) == (200, b"done")


async def test_the_apps_own_timeout_errors_are_not_turned_into_504s() -> None:
    app = RequestTimeout(slow_app(before=0.0, fail=TimeoutError("db")), seconds=5)
    with pytest.raises(TimeoutError, match="db"):
        await call(app, "GET", "/threads")
