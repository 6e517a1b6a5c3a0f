"""ASGI: with `AUTH_MODE=none`, serve this machine's tools and pages only, not the web's.

Without credentials the browser is the way in. Any web page can send a simple request
(a POST labelled `text/plain`: no CORS preflight) to `http://127.0.0.1:8123`, and Trellis
reads every body as JSON, so it would create threads and start runs; and a page whose
own name is re-pointed at 127.0.0.1 (DNS rebinding) is same-origin with Trellis and can
read the answers. So, in `none` mode only:

    Host            must be localhost, 127.0.0.1, [::1], `HOST` or one of `ALLOWED_HOSTS`
    Origin          must be the request's own origin or one of `CORS_ORIGINS`
    Sec-Fetch-Site  `cross-site` needs such an origin too (top-level GET navigations aside:
                    the page that links here cannot read what they show)

and anything else answers 403 `{"detail", "code": "forbidden"}`. Tools that send no
`Origin` (curl, the SDK, scripts) are unaffected; LangGraph Studio is, by default, in
`CORS_ORIGINS`. Modes with credentials do not need this: a page cannot attach them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from server.core.audit import security_event
from server.http.asgi import client_address, send_json

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def host_name(value: str) -> str:
    """A `Host` header's name without its port, lower-case; IPv6 keeps its brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    name, _, _ = value.partition(":")
    return name.rstrip(".")


def bracketed(host: str) -> str:
    """`host` as a `Host` header names it (IPv6 addresses in brackets)."""
    host = host.lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class LocalOnly:
    """Refuses foreign `Host` names and cross-site requests (for `AUTH_MODE=none`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind_host: str,
        allowed_hosts: list[str],
        cors_origins: list[str],
    ) -> None:
        self.app = app
        self.hosts = LOOPBACK_HOSTS | {bracketed(h) for h in allowed_hosts}
        if bind_host not in _WILDCARD_BINDS:
            self.hosts |= {bracketed(bind_host)}
        self.origins = frozenset(origin.rstrip("/") for origin in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        security_event(
            "local_only_refused",
            reason=refusal,
            client=client_address(scope),
            path=scope["path"],
            method=scope["method"],
        )
        await send_json(send, 403, refusal, "forbidden")

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None to serve it."""
        headers: dict[bytes, str] = {}
        for key, value in scope.get("headers") or []:
            if key in (b"host", b"origin", b"sec-fetch-site", b"sec-fetch-mode"):
                headers.setdefault(key, value.decode("latin-1"))
        host = headers.get(b"host")
        if host is not None and host_name(host) not in self.hosts:
            return (
                f"Host {host[:100]!r} is not served while AUTH_MODE=none (add it to "
                "ALLOWED_HOSTS if it names this machine)"
            )
        origin = headers.get(b"origin")
        if origin is not None:
            if self._allowed_origin(origin, host):
                return None
            return (
                f"cross-site request from {origin[:100]!r} refused: the origin is not in "
                "CORS_ORIGINS and AUTH_MODE=none serves this machine only"
            )
        if headers.get(b"sec-fetch-site") == "cross-site":
            navigation = headers.get(b"sec-fetch-mode") == "navigate" and scope["method"] in (
                "GET",
                "HEAD",
            )
            if not navigation:
                return "cross-site request refused: AUTH_MODE=none serves this machine only"
        return None

    def _allowed_origin(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().rstrip("/")
        if origin in self.origins or "*" in self.origins:
            return True
        if origin == "null" or host is None:
            return False
        return urlsplit(origin).netloc.lower() == host.strip().lower()
