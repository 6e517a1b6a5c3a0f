"""Request heads are bounded where uvicorn parses them, before the app (or auth) sees them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.http.app import create_app
from tests.support.security import security_settings
from tests.support.servers import serve_in_loop

BOUND = 64 * 1024


def recording_app(calls: list[str]) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        calls.append(request.url.path)
        body = await request.body()
        return JSONResponse({"headers": len(request.headers.raw), "body": len(body)})

    return Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])])


async def raw_request(url: str, head: bytes) -> bytes:
    """Send `head` on a fresh connection; what came back before the server closed."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_head_over_the_bound_is_refused_before_the_app() -> None:
    calls: list[str] = []
    async with serve_in_loop(recording_app(calls)) as url:
        big = b"GET /echo HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * (100 * 1024) + b"\r\n\r\n"
        answer = await raw_request(url, big)
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
        assert json.loads(rest.split(b"\r\n\r\n", 1)[1]) == {
            "detail": f"request line and headers exceed {BOUND} bytes",
            "code": "headers_too_large",
        }
        # Many headers add up the same as one large one.
        many = b"".join(b"x-h%d: %s\r\n" % (i, b"b" * 1000) for i in range(80))
        answer = await raw_request(url, b"GET /echo HTTP/1.1\r\nhost: t\r\n" + many + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert calls == []

        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            # Under the bound, on one kept-alive connection: the count starts again per request.
            for _ in range(3):
                fine = await http.get("/echo", headers={"x-big": "a" * (48 * 1024)})
                assert fine.status_code == 200
            # A body is not part of the head, however large.
            posted = await http.post("/echo", content=b"z" * (512 * 1024))
            assert posted.json()["body"] == 512 * 1024
        assert calls == ["/echo"] * 4


async def test_the_bound_holds_when_a_head_arrives_in_pieces() -> None:
    calls: list[str] = []
    async with serve_in_loop(recording_app(calls), max_header_bytes=4096) as url:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        answering = asyncio.create_task(reader.read())  # until the server ends its side
        writer.write(b"GET /echo HTTP/1.1\r\nhost: t\r\nx-slow: ")
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < 1024 * 1024 and not answering.done():
                writer.write(b"c" * 512)
                await writer.drain()
                sent += 512
                await asyncio.sleep(0.001)
        answer = await asyncio.wait_for(answering, 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert sent < 256 * 1024  # refused early, not after the whole header
        assert calls == []


async def test_trellis_refuses_an_oversized_credential_header_before_authenticating(
    security_db: str,
) -> None:
    settings = security_settings(security_db, auth_mode="api_key")
    async with serve_in_loop(create_app(settings)) as url:
        answer = await raw_request(
            url,
            b"POST /threads/search HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n"
            b"x-api-key: " + b"k" * (128 * 1024) + b"\r\n\r\n{}",
        )
        assert answer.startswith(b"HTTP/1.1 431 ")
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            refused = await http.post(
                "/threads/search", json={}, headers={"x-api-key": "k" * 20_000}
            )
            assert refused.status_code == 401  # under the head bound, over the credential one
            assert refused.json()["detail"] == "credential longer than 16384 bytes"
