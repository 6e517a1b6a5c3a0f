"""Request limits: rate limits per identity and route class, body size, field sizes, timeouts.

    RateLimits       `limits` (moving window by default) on Redis; fails open when Redis is down
    RateLimit        ASGI: 429 + Retry-After per identity and route class (runs < writes < reads),
                     and per client address on the public paths (`/ok`, `/info`, the docs)
    BodyGuard        ASGI: 422 for a path or query the JSON policy refuses; 413 from
                     Content-Length up front or while a chunked body streams in; then the one
                     parse of the body, 422 for what the JSON policy or PayloadLimits refuses
    PayloadLimits    oversized metadata / run input or too many stream modes in a parsed body
    RequestTimeout   ASGI: 504 when a non-streaming request has not started answering in time

Every refusal is a JSON body `{"detail", "code"}` like the rest of the API (`server.http.asgi`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from limits import RateLimitItem, parse
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import StorageTypes, storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth.identity import Identity
from server.core.audit import security_event
from server.core.encoding import UnsafeJson, check_text, parse_json
from server.core.settings import Settings
from server.http.asgi import BODY_STATE, JSON_STATE, client_address, replay, send_json, too_many
from server.http.route_table import PUBLIC_PATHS, Route, classify

log = logging.getLogger("trellis.limits")

_STRATEGIES: dict[str, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
            "public": parse(settings.rate_limit_public),
        }
        self._storage: StorageTypes | None = None
        self._limiter: RateLimiter | None = None
        self._down_until = 0.0

    async def open(self) -> None:
        """Create the storage client (connections are made on first use)."""
        if not self.enabled:
            return
        options: dict[str, float | str | bool] = {"key_prefix": self.key_prefix}
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

    async def hit(self, bucket: str, key: str, *, cost: int = 1) -> float | None:
        """Count `cost` requests (all or none); None if allowed, else seconds until the caller
        may retry."""
        if cost <= 0:
            return None
        return await self._check(bucket, key, count=True, cost=cost)

    async def exhausted(self, bucket: str, key: str) -> float | None:
        """Whether `key` already used up `bucket` (without counting); seconds to wait if so."""
        return await self._check(bucket, key, count=False)

    async def _check(self, bucket: str, key: str, *, count: bool, cost: int = 1) -> float | None:
        if self._limiter is None or time.monotonic() < self._down_until:
            return None
        item = self.items[bucket]
        try:
            check = self._limiter.hit if count else self._limiter.test
            if await check(item, bucket, key, cost=cost):
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


def rate_key(scope: Scope) -> str:
    """Whom a request counts against: its authenticated identity, else its client address."""
    identity: Identity | None = scope.get("state", {}).get("identity")
    if identity is not None and identity.is_authenticated:
        return f"id:{identity.identity}"
    return f"ip:{client_address(scope)}"


class RateLimit:
    """Limits each identity per route class; anonymous callers, and every caller of the
    public paths, are keyed by address.

    A request counts once here; a route that does the work of several (`/runs/batch`)
    charges the rest itself (`RateLimits.hit` with a cost), once its body is read.
    """

    def __init__(self, app: ASGIApp, *, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        bucket: str
        if scope["path"] in PUBLIC_PATHS:
            bucket, key = "public", f"ip:{client_address(scope)}"
        else:
            route = classify(scope["method"], scope["path"], scope.get("query_string", b""))
            bucket, key = route.rate_class, rate_key(scope)
        retry = await self.limits.hit(bucket, key)
        if retry is not None:
            security_event(
                "rate_limited",
                key=key,
                bucket=bucket,
                path=scope["path"],
                retry_after=math.ceil(retry),
            )
            await too_many(send, retry, f"{bucket} requests")
            return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being received."""


def _json_size(value: object) -> int:
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return 0


@dataclass(frozen=True)
class PayloadLimits:
    """Bounds on the fields of a parsed JSON body (the whole body's size is BodyGuard's)."""

    metadata_bytes: int
    """`metadata` of any object in the body, as JSON."""
    input_bytes: int
    """`input` plus `command` of a request that creates runs, as JSON."""
    stream_modes: int
    """Entries of `stream_mode` in a request that creates runs."""

    def problem(self, data: object, route: Route) -> str | None:
        """Why `data` (the parsed body, an object or a batch of them) is refused, or None."""
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not isinstance(item, dict):
                continue
            metadata = item.get("metadata")
            if metadata is not None and _json_size(metadata) > self.metadata_bytes:
                return f"metadata exceeds {self.metadata_bytes} bytes of JSON"
            if route.creates_runs:
                size = _json_size(item.get("input")) + _json_size(item.get("command"))
                if size > self.input_bytes:
                    return f"run input exceeds {self.input_bytes} bytes of JSON"
                modes = item.get("stream_mode")
                if isinstance(modes, list) and len(modes) > self.stream_modes:
                    return f"at most {self.stream_modes} stream modes"
        return None


class BodyGuard:
    """Checks the URL, bounds the request body before it is fully read, then parses it once.

    A path or query parameter the JSON policy refuses (`server.core.encoding`: NUL) is a
    422 shaped like FastAPI's validation errors (`loc` names the field), as are the body's.
    A declared `Content-Length` over the limit is refused without reading a byte; a chunked
    body is counted as it arrives and refused at the first chunk that crosses the limit. A
    body that fits is buffered, parsed as JSON whatever its content type, checked against
    the JSON policy and the field sizes, and replayed to the app with the parsed value
    under `JSON_STATE`: routes (`CheckedRoute`) and auth handlers read that value, so they
    see exactly what was checked. A body that does not parse is a 422.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.payload = PayloadLimits(
            metadata_bytes=settings.max_metadata_bytes,
            input_bytes=settings.max_run_input_bytes,
            stream_modes=settings.max_stream_modes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            _check_url(scope)
        except UnsafeJson as exc:
            await send_json(send, 422, [exc.error()], "validation_error")
            return
        if scope["method"] not in _BODY_METHODS:
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
                data = parse_json(body)
            except UnsafeJson as exc:
                await send_json(send, 422, [exc.error()], "validation_error")
                return
            state[JSON_STATE] = data
            problem = self.payload.problem(data, classify(scope["method"], scope["path"]))
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


class _Disconnected(Exception):
    """The client disconnected mid-body; nothing to answer."""


def _check_url(scope: Scope) -> None:
    """Raise `UnsafeJson` for a path or query parameter the JSON policy refuses (the server
    decodes percent-escapes leniently, so NUL is what can get through)."""
    check_text(scope["path"], ("path",))
    query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True):
        check_text(key, ("query",))
        check_text(value, ("query", key))


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
