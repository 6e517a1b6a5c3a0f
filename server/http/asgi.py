"""ASGI helpers the middlewares share: answering straight from ASGI, the peer address,
replaying a buffered body, and the scope-state keys of the body `BodyGuard` read.

Every answer is the API's error body `{"detail", "code"}` (`server.core.errors.error_body`).
"""

from __future__ import annotations

import math

import orjson
from starlette.types import Message, Receive, Scope, Send

from server.core.errors import error_body

BODY_STATE = "trellis.body"
"""Scope-state key of the buffered request body (raw bytes), for later middlewares."""
JSON_STATE = "trellis.json"
"""Scope-state key of the parsed JSON body (absent when it is not JSON)."""
ROUTE_STATE = "trellis.route"
"""Scope-state key of the matched route's path template (`/threads/{thread_id}`), for metrics:
the state dict is shared by every copy a middleware makes of the scope."""


async def send_json(
    send: Send, status: int, detail: object, code: str, headers: dict[str, str] | None = None
) -> None:
    """Answer with the API's error body, straight from ASGI."""
    body = orjson.dumps(error_body(detail, code))
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def too_many(send: Send, retry_after: float, what: str) -> None:
    """The 429 answer, with `Retry-After` in whole seconds."""
    await send_json(
        send,
        429,
        f"rate limit exceeded for {what}; retry in {math.ceil(retry_after)} s",
        "rate_limited",
        {"Retry-After": str(math.ceil(retry_after))},
    )


def client_address(scope: Scope) -> str:
    """The peer address; behind a proxy listed in `FORWARDED_ALLOW_IPS`, the client it names."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields `body` once, then defers to the real one (for disconnects)."""
    sent = False

    async def _receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return _receive
