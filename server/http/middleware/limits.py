"""Request limits: rate limits per identity and route class, body size, field sizes, timeouts.

    RateLimits       `limits` (moving window by default) on Redis; fails open when Redis is down
    RateLimit        ASGI: 429 + Retry-After per identity and route class (runs < writes < reads)
    BodyGuard        ASGI: 413 from Content-Length up front or while a chunked body streams in,
                     then 422 for oversized metadata / run input or too many stream modes
    RequestTimeout   ASGI: 504 when a non-streaming request has not started answering in time

Every refusal is a JSON body `{"detail", "code"}` like the rest of the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

import orjson
from limits import RateLimitItem, parse
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth.identity import Identity
from server.core.audit import security_event
from server.core.settings import Settings
from server.http.route_table import PUBLIC_PATHS, Route, classify

log = logging.getLogger("trellis.limits")

_STRATEGIES: dict[str, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_STATE = "trellis.body"
"""Scope-state key of the buffered request body (raw bytes), for later middlewares."""
JSON_STATE = "trellis.json"
"""Scope-state key of the parsed JSON body (absent when it is not JSON)."""


async def send_json(
    send: Send, status: int, detail: object, code: str, headers: dict[str, str] | None = None
) -> None:
    """Answer with the API's error body, straight from ASGI."""
    body = orjson.dumps({"detail": detail, "code": code})
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def client_address(scope: Scope) -> str:
    """The peer address (put Trellis behind a proxy with uvicorn's --proxy-headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimits:
    """Rate-limit buckets on a `limits` storage; any storage failure lets requests through."""

    RETRY_STORAGE_AFTER = 5.0
    """After a storage failure, skip limiting for this long instead of waiting on Redis."""

    def __init__(self, settings: Settings, *, key_prefix: str | None = None) -> None:
        self.enabled = settings.rate_limit_enabled
        self.url = settings.limits_storage_url
        self.key_prefix = key_prefix or settings.rate_limit_key_prefix
        self.strategy = _STRATEGIES[settings.rate_limit_strategy]
        self.items: dict[str, RateLimitItem] = {
            "read": parse(settings.rate_limit_read),
            "write": parse(settings.rate_limit_write),
            "runs": parse(settings.rate_limit_runs),
            "auth_failures": parse(settings.rate_limit_auth_failures),
        }
        self._storage: Any = None
        self._limiter: RateLimiter | None = None
        self._down_until = 0.0

    async def open(self) -> None:
        """Create the storage client (connections are made on first use)."""
        if not self.enabled:
            return
        options: dict[str, Any] = {"key_prefix": self.key_prefix}
        if self.url.startswith("async+redis"):
            options |= {
                "implementation": "redispy",
                "socket_connect_timeout": 0.5,
                "socket_timeout": 0.5,
            }
        self._storage = storage_from_string(self.url, **options)
        self._limiter = self.strategy(self._storage)

    async def close(self) -> None:
        """Close the storage's connection pool."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None and hasattr(client, "aclose"):
            with contextlib.suppress(Exception):
                await client.aclose()
        self._storage = self._limiter = None

    async def hit(self, bucket: str, key: str) -> float | None:
        """Count one request; None if allowed, else seconds until the caller may retry."""
        return await self._check(bucket, key, count=True)

    async def exhausted(self, bucket: str, key: str) -> float | None:
        """Whether `key` already used up `bucket` (without counting); seconds to wait if so."""
        return await self._check(bucket, key, count=False)

    async def _check(self, bucket: str, key: str, *, count: bool) -> float | None:
        if self._limiter is None or time.monotonic() < self._down_until:
            return None
        item = self.items[bucket]
        try:
            check = self._limiter.hit if count else self._limiter.test
            if await check(item, bucket, key):
                return None
            stats = await self._limiter.get_window_stats(item, bucket, key)
        except Exception as exc:
            self._storage_failed(exc)
            return None
        return max(1.0, stats.reset_time - time.time())

    def _storage_failed(self, exc: Exception) -> None:
        self._down_until = time.monotonic() + self.RETRY_STORAGE_AFTER
        log.warning(
            "rate-limit storage unavailable; requests are not rate limited",
            extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
        )


async def too_many(send: Send, retry_after: float, what: str) -> None:
    """The 429 answer."""
    await send_json(
        send,
        429,
        f"rate limit exceeded for {what}; retry in {math.ceil(retry_after)} s",
        "rate_limited",
        {"Retry-After": str(math.ceil(retry_after))},
    )


class RateLimit:
    """Limits each identity per route class; anonymous callers are keyed by address."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        identity: Identity | None = scope.get("state", {}).get("identity")
        if identity is not None and identity.is_authenticated:
            key = f"id:{identity.identity}"
        else:
            key = f"ip:{client_address(scope)}"
        route = classify(scope["method"], scope["path"], scope.get("query_string", b""))
        retry = await self.limits.hit(route.rate_class, key)
        if retry is not None:
            security_event(
                "rate_limited",
                key=key,
                bucket=route.rate_class,
                path=scope["path"],
                retry_after=math.ceil(retry),
            )
            await too_many(send, retry, f"{route.rate_class} requests")
            return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being received."""


def _json_size(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return 0


class BodyGuard:
    """Bounds request bodies before they are fully read, then checks field sizes.

    A declared `Content-Length` over the limit is refused without reading a
    byte; a chunked body is counted as it arrives and refused at the first chunk
    that crosses the limit. Bodies that fit are buffered once, parsed, checked
    (metadata size, run input size, stream-mode count) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_metadata = settings.max_metadata_bytes
        self.max_input = settings.max_run_input_bytes
        self.max_modes = settings.max_stream_modes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json(send, 400, "invalid Content-Length", "bad_request")
                return
            if int(declared) > self.max_body:
                await self._too_large(scope, send, int(declared))
                return
        try:
            body = await self._read(receive)
        except BodyTooLarge:
            await self._too_large(scope, send, None)
            return
        except _Disconnected:
            return
        state = scope.setdefault("state", {})
        state[BODY_STATE] = body
        if body:
            try:
                state[JSON_STATE] = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass  # not JSON: the route answers 422 itself
            else:
                problem = self._check(state[JSON_STATE], classify(scope["method"], scope["path"]))
                if problem is not None:
                    await send_json(send, 422, problem, "payload_limit")
                    return
        await self.app(scope, replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLarge(f"body exceeds {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, scope: Scope, send: Send, declared: int | None) -> None:
        security_event(
            "body_too_large",
            path=scope["path"],
            client=client_address(scope),
            declared=declared,
            limit=self.max_body,
        )
        await send_json(
            send,
            413,
            f"request body exceeds the limit of {self.max_body} bytes",
            "payload_too_large",
            {"Connection": "close"},
        )

    def _check(self, data: Any, route: Route) -> str | None:
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not isinstance(item, dict):
                continue
            metadata = item.get("metadata")
            if metadata is not None and _json_size(metadata) > self.max_metadata:
                return f"metadata exceeds {self.max_metadata} bytes of JSON"
            if route.creates_runs:
                size = _json_size(item.get("input")) + _json_size(item.get("command"))
                if size > self.max_input:
                    return f"run input exceeds {self.max_input} bytes of JSON"
                modes = item.get("stream_mode")
                if isinstance(modes, list) and len(modes) > self.max_modes:
                    return f"at most {self.max_modes} stream modes"
        return None


class _Disconnected(Exception):
    """The client disconnected mid-body; nothing to answer."""


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


class RequestTimeout:
    """504 for a non-streaming request that has not started its response within the deadline.

    Streaming routes (SSE, `wait`, `join`, `cancel?wait=1`) are exempt: they have
    heartbeats and their own lifetimes. Once a response has started it is left
    to finish, since its status line is already on the wire.
    """

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = classify(scope["method"], scope["path"], scope.get("query_string", b""))
        if route.streams:
            await self.app(scope, receive, send)
            return
        deadline = asyncio.timeout(self.seconds)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                deadline.reschedule(None)  # a started response is left to finish
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started or not deadline.expired():
                raise
            log.warning("request timed out", extra={"path": scope["path"], "seconds": self.seconds})
            await send_json(send, 504, f"the request took longer than {self.seconds} s", "timeout")
