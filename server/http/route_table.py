"""What each API route is, for security decisions made before routing.

The auth, rate-limit, body and timeout middlewares run before FastAPI routes a
request, so this module classifies a (method, path) the way the routers will:
which resource and action the official platform's `@auth.on` handlers would
see, whether it only reads, whether it creates runs, and whether it streams.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

RateClass = Literal["read", "write", "runs"]
"""Rate-limit bucket: reads, other writes, or run creation (the strictest)."""

DOCS_ASSETS_URL = "/docs/assets"
"""Where the app serves the scripts and styles of the docs pages (`server.http.docs`)."""
DOCS_ASSETS = frozenset(
    f"{DOCS_ASSETS_URL}/{name}"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
)
"""The docs pages' assets: public like the pages, and named one by one like every public path."""

METRICS_PATH = "/metrics"
"""Prometheus metrics: authenticated, except from `METRICS_PUBLIC_ADDRESSES`."""

PUBLIC_PATHS = frozenset(
    {
        "/ok",
        "/ready",
        "/info",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/favicon.ico",
    }
    | DOCS_ASSETS
)
"""Paths served without authentication."""

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
"""HTML pages that load scripts and styles, so they get no strict CSP."""


@dataclass(frozen=True)
class Route:
    """A classified request."""

    resource: str | None = None
    """`threads`, `assistants` or `store` (runs belong to threads, as on the platform)."""
    actions: tuple[str, ...] = ()
    """Authorization actions, checked in order (copy is a read and a create)."""
    thread_id: str | None = None
    run_id: str | None = None
    assistant_id: str | None = None
    reads_only: bool = True
    creates_runs: bool = False
    streams: bool = False
    """Long-lived responses (SSE, wait, join) that the request timeout must not cut."""
    counts: bool = False
    """`/count` answers an integer, so an impossible filter answers 0 rather than []."""
    commands: bool = False
    """`POST /threads/{id}/commands`: a protocol command, whose `params` are the run's."""

    @property
    def rate_class(self) -> RateClass:
        """The rate-limit bucket of this route."""
        if self.creates_runs:
            return "runs"
        return "read" if self.reads_only else "write"


_ID = r"(?P<{}>[^/]+)"
_T = _ID.format("thread_id")
_R = _ID.format("run_id")
_A = _ID.format("assistant_id")

_ROUTES: list[tuple[re.Pattern[str], dict[str, tuple[str, str, dict[str, bool]]]]] = [
    (re.compile(r"^/assistants$"), {"POST": ("assistants", "create", {})}),
    (re.compile(r"^/assistants/search$"), {"POST": ("assistants", "search", {"read": True})}),
    (
        re.compile(r"^/assistants/count$"),
        {"POST": ("assistants", "search", {"read": True, "count": True})},
    ),
    (
        re.compile(rf"^/assistants/{_A}$"),
        {
            "GET": ("assistants", "read", {"read": True}),
            "PATCH": ("assistants", "update", {}),
            "DELETE": ("assistants", "delete", {}),
        },
    ),
    (
        re.compile(rf"^/assistants/{_A}/(graph|schemas|subgraphs)(/.*)?$"),
        {"GET": ("assistants", "read", {"read": True})},
    ),
    (re.compile(rf"^/assistants/{_A}/versions$"), {"POST": ("assistants", "read", {"read": True})}),
    (re.compile(rf"^/assistants/{_A}/latest$"), {"POST": ("assistants", "update", {})}),
    (re.compile(r"^/threads$"), {"POST": ("threads", "create", {})}),
    (re.compile(r"^/threads/search$"), {"POST": ("threads", "search", {"read": True})}),
    (
        re.compile(r"^/threads/count$"),
        {"POST": ("threads", "search", {"read": True, "count": True})},
    ),
    (re.compile(r"^/threads/prune$"), {"POST": ("threads", "delete", {})}),
    (
        re.compile(rf"^/threads/{_T}$"),
        {
            "GET": ("threads", "read", {"read": True}),
            "PATCH": ("threads", "update", {}),
            "DELETE": ("threads", "delete", {}),
        },
    ),
    (re.compile(rf"^/threads/{_T}/copy$"), {"POST": ("threads", "read+create", {})}),
    (
        re.compile(rf"^/threads/{_T}/state$"),
        {"GET": ("threads", "read", {"read": True}), "POST": ("threads", "update", {})},
    ),
    (
        re.compile(rf"^/threads/{_T}/state/checkpoint$"),
        {"POST": ("threads", "read", {"read": True})},
    ),
    (re.compile(rf"^/threads/{_T}/state/[^/]+$"), {"GET": ("threads", "read", {"read": True})}),
    (
        re.compile(rf"^/threads/{_T}/history$"),
        {"GET": ("threads", "read", {"read": True}), "POST": ("threads", "read", {"read": True})},
    ),
    (
        re.compile(rf"^/threads/{_T}/runs$"),
        {
            "GET": ("threads", "read", {"read": True}),
            "POST": ("threads", "create_run", {"runs": True}),
        },
    ),
    (
        re.compile(rf"^/threads/{_T}/runs/(stream|wait)$"),
        {"POST": ("threads", "create_run", {"runs": True, "streams": True})},
    ),
    (
        re.compile(rf"^/threads/{_T}/runs/{_R}$"),
        {"GET": ("threads", "read", {"read": True}), "DELETE": ("threads", "delete", {})},
    ),
    (
        re.compile(rf"^/threads/{_T}/runs/{_R}/(join|stream)$"),
        {"GET": ("threads", "read", {"read": True, "streams": True})},
    ),
    (
        re.compile(rf"^/threads/{_T}/stream$"),
        {"GET": ("threads", "read", {"read": True, "streams": True})},
    ),
    (
        re.compile(rf"^/threads/{_T}/stream/events$"),
        {"POST": ("threads", "read", {"read": True, "streams": True})},
    ),
    (
        re.compile(rf"^/threads/{_T}/commands$"),
        {"POST": ("threads", "create_run", {"runs": True, "commands": True})},
    ),
    (re.compile(rf"^/threads/{_T}/runs/{_R}/cancel$"), {"POST": ("threads", "update", {})}),
    (re.compile(r"^/runs/cancel$"), {"POST": ("threads", "update", {})}),
    (re.compile(r"^/runs(/batch)?$"), {"POST": ("threads", "create_run", {"runs": True})}),
    (
        re.compile(r"^/runs/(stream|wait)$"),
        {"POST": ("threads", "create_run", {"runs": True, "streams": True})},
    ),
    (
        re.compile(r"^/store/items$"),
        {
            "PUT": ("store", "put", {}),
            "GET": ("store", "get", {"read": True}),
            "DELETE": ("store", "delete", {}),
        },
    ),
    (re.compile(r"^/store/items/search$"), {"POST": ("store", "search", {"read": True})}),
    (re.compile(r"^/store/namespaces$"), {"POST": ("store", "list_namespaces", {"read": True})}),
]


@functools.lru_cache(maxsize=1024)
def classify(method: str, path: str, query_string: bytes = b"") -> Route:
    """The route a request addresses; unknown routes read when they are GET/HEAD.

    Several middleware layers ask about the same request, so answers are cached.
    """
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    for pattern, methods in _ROUTES:
        match = pattern.match(path)
        if match is None or method not in methods:
            continue
        resource, action, flags = methods[method]
        params = match.groupdict()
        streams = flags.get("streams", False)
        if path.endswith("/cancel") and re.search(rb"(^|&)wait=(1|true)", query_string):
            streams = True
        return Route(
            resource=resource,
            actions=tuple(action.split("+")),
            thread_id=params.get("thread_id"),
            run_id=params.get("run_id"),
            assistant_id=params.get("assistant_id"),
            reads_only=flags.get("read", False),
            creates_runs=flags.get("runs", False),
            streams=streams,
            counts=flags.get("count", False),
            commands=flags.get("commands", False),
        )
    return Route(reads_only=method == "GET")
