"""ASGI middleware: request ids, access logs, and JSON bodies sent as text/plain."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("trellis.http")

_PLAIN = b"text/plain"


class RequestContext:
    """Gives each request an id, logs one line per request, and treats text/plain bodies as JSON.

    LangGraph Studio posts JSON with `Content-Type: text/plain` to avoid CORS
    preflights; the official server parses it as JSON, so Trellis does too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope["headers"])
        request_id = None
        for index, (name, value) in enumerate(headers):
            if name == b"content-type" and value.startswith(_PLAIN):
                headers[index] = (name, b"application/json")
            elif name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
                request_id = value.decode()
        request_id = request_id or uuid.uuid4().hex
        scope = {**scope, "headers": headers}
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
