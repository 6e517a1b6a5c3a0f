"""ASGI: the route groups `http.disable_*` removes answer 404, as if they were not served.

The official server leaves those groups out of its router (`langgraph_api.api`:
`protected_routes`), so a request to one is an ordinary 404 after authentication. This
middleware sits just outside the router (inside the security middlewares) and answers the
same way; a websocket to a removed route is closed, as Starlette's router closes one it
cannot route. Which paths belong to which group follows the official route lists: runs
(`/runs/*`, `/threads/{id}/runs/*`) and the thread protocol (`/threads/{id}/commands`,
`/threads/{id}/stream/events`) go with `disable_runs`, the rest of `/threads` with
`disable_threads`; `disable_meta` removes `/info`, `/metrics` and the docs, and `/ok`
then answers `{"ok": true}` without checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from server.http.asgi import send_json
from server.http.route_table import DOCS_ASSETS, METRICS_PATH

_RUNS = re.compile(r"^/(runs|threads/[^/]+/runs)(/.*)?$")
_PROTOCOL = re.compile(r"^/threads/[^/]+/(commands|stream/events)$")
_GROUPS: dict[str, re.Pattern[str]] = {
    "disable_assistants": re.compile(r"^/assistants(/.*)?$"),
    "disable_threads": re.compile(r"^/threads(/.*)?$"),
    "disable_store": re.compile(r"^/store(/.*)?$"),
    "disable_meta": re.compile(
        "^("
        + "|".join(
            re.escape(p)
            for p in sorted(
                {"/info", METRICS_PATH, "/docs", "/docs/oauth2-redirect", "/redoc"}
                | {"/openapi.json"}
                | DOCS_ASSETS
            )
        )
        + ")$"
    ),
}


def disabled_groups(section: object) -> frozenset[str]:
    """The `http.disable_*` flags set to true in an `http` section."""
    if not isinstance(section, Mapping):
        return frozenset()
    return frozenset(
        name for name, value in section.items() if name.startswith("disable_") and value is True
    )


def removed(path: str, flags: frozenset[str]) -> bool:
    """Whether `path` belongs to a route group the flags remove."""
    if _RUNS.match(path) or _PROTOCOL.match(path):
        # Runs and the thread protocol (which starts runs) are removed with the runs;
        # they stay when only the threads go, as in the official route lists.
        return "disable_runs" in flags or (
            "disable_event_streaming" in flags and bool(_PROTOCOL.match(path))
        )
    return any(flag in flags and pattern.match(path) for flag, pattern in _GROUPS.items())


class DisabledRoutes:
    """Answers 404 for the route groups `http.disable_*` removes."""

    def __init__(self, app: ASGIApp, *, flags: frozenset[str]) -> None:
        self.app = app
        self.flags = flags
        self.meta_off = "disable_meta" in flags

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.meta_off and scope["type"] == "http" and path == "/ok":
            body = orjson.dumps({"ok": True})
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if not removed(path, self.flags):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
            return
        await send_json(send, 404, "Not Found", "not_found")
