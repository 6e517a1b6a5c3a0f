"""ASGI middleware: request ids, access logs, request duration metrics, and every body read
as JSON (any Content-Type)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core import tracing
from server.core.logging import RequestInfo, serving
from server.core.metrics import HTTP_DURATION
from server.http.asgi import ROUTE_STATE

log = logging.getLogger("trellis.http")

_JSON = b"application/json"
_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
"""A W3C `traceparent` header (version-trace id-parent id-flags)."""
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(scope: Scope) -> str:
    """The route template a request matched (bounded: never the raw path); `unmatched`."""
    template = scope.get("state", {}).get(ROUTE_STATE)
    if template is None:
        template = getattr(scope.get("route"), "path", None)  # routes outside `CheckedRoute`
    return str(template) if template is not None else "unmatched"


class RequestContext:
    """Gives each request an id, logs one line per request, and reads every body as JSON.

    The API takes JSON bodies only, and the official server parses a body as JSON
    whatever its `Content-Type` says: LangGraph Studio posts JSON as `text/plain`
    to avoid CORS preflights, `curl -d` labels it a form, and some clients send no
    label. So every request is labelled `application/json` here, and routes read the
    body `BodyGuard` parsed and checked (a body that is not JSON gets its 422 there).
    """

    def __init__(self, app: ASGIApp, *, measure: bool = True) -> None:
        self.app = app
        self.measure = measure
        """Whether request durations go to the metrics (`METRICS_ENABLED`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", _JSON)]
        request_id = traceparent = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                continue
            headers.append((name, value))
            if name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
                request_id = value.decode()
            elif name == b"traceparent" and _TRACEPARENT.match(value):
                traceparent = value.decode()
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

        span = None
        if (tracer := tracing.current()) is not None:
            span = tracer.start(
                f"{scope['method']} request",
                parent=tracer.extract(traceparent),
                kind=tracer.server,
                attributes={
                    "http.request.method": scope["method"],
                    "trellis.request_id": request_id,
                },
            )
            traceparent = tracer.traceparent(span)  # the runs it creates join its trace
        try:
            with serving(RequestInfo(request_id, traceparent)):
                await self.app(scope, receive, send_with_id)
        except BaseException as error:
            if span is not None:
                tracing.failed(span, error)
            raise
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "other"
            if span is not None:
                route = route_label(scope)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                span.end()
            if self.measure:
                HTTP_DURATION.labels(method, route_label(scope), str(status)).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
