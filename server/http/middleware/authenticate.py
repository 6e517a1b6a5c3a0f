"""ASGI: resolves the caller (none, api_key, jwt or custom) into an `Identity` on
`request.state.identity` / `request.state.owner`; 401 otherwise. API keys and JWTs whose
permissions claim lacks `write` may only read (`Identity.scoped`).

Failed authentications are counted per client address (`RATE_LIMIT_AUTH_FAILURES`); past
the limit, failures answer 429 instead of 401. Credentials are checked first and only
failures are limited, so nobody can lock a valid caller out by failing from its address
(shared NAT, a proxy): guessing stays limited, a valid key or token always gets through.
API keys (256 random bits) and signed tokens cannot be guessed, so checking them while an
address is over its limit gives nothing away; it costs one indexed lookup or signature check.
A custom `@auth.authenticate` handler may take guessable ones (passwords), so in `custom`
mode an address over its limit is refused before its credentials are looked at.

`GET /metrics` from an address in `METRICS_PUBLIC_ADDRESSES` (a Prometheus scraper) needs no
credentials; from any other address it is authenticated like every route.

It runs before routing, so routes stay unaware of it: every query is already scoped to
the owner. The credential checks themselves are `server.auth.authenticators`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth.authenticators import REALM, Authenticator, RevokedKey, Unauthenticated
from server.auth.identity import set_current
from server.core.audit import security_event
from server.http.asgi import client_address, send_json, too_many
from server.http.middleware.limits import RateLimits
from server.http.route_table import METRICS_PATH, PUBLIC_PATHS, classify

log = logging.getLogger("trellis.auth")


class Authenticate:
    """Resolves every non-public request's identity; refuses unauthenticated ones."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        limits: RateLimits,
        metrics_addresses: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.metrics_networks = [
            ipaddress.ip_network("0.0.0.0/0" if item == "*" else item, strict=False)
            for item in metrics_addresses
        ]
        if "*" in metrics_addresses:
            self.metrics_networks.append(ipaddress.ip_network("::/0"))
        self.authenticator = authenticator
        self.limits = limits
        self.checks_credentials = authenticator.mode != "none"
        self.limits_before_checking = authenticator.mode == "custom"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        if scope["path"] == METRICS_PATH and self._scraper(client):
            await self.app(scope, receive, send)
            return
        if self.limits_before_checking:
            retry = await self.limits.exhausted("auth_failures", client)
            if retry is not None:
                await self._too_many(send, client, retry)
                return
        try:
            identity = await self.authenticator.authenticate(scope)
        except Unauthenticated as exc:
            if isinstance(exc, RevokedKey):
                security_event(
                    "revoked_key_used",
                    key_id=exc.key_id,
                    owner=exc.owner,
                    client=client,
                    path=scope["path"],
                )
            security_event(
                "auth_failed",
                mode=self.authenticator.mode,
                reason=exc.reason,
                client=client,
                path=scope["path"],
                method=scope["method"],
            )
            if self.checks_credentials:
                retry = await self.limits.hit("auth_failures", client)
                if retry is not None:
                    await self._too_many(send, client, retry)
                    return
            headers = {"WWW-Authenticate": REALM} if exc.status == 401 else {}
            headers |= exc.headers or {}
            code = {401: "unauthorized", 403: "forbidden"}.get(exc.status, "auth_error")
            await send_json(send, exc.status, exc.reason, code, headers)
            return
        except Exception:
            log.exception("authentication failed unexpectedly", extra={"path": scope["path"]})
            await send_json(send, 500, "authentication failed; see the server log", "auth_error")
            return
        if identity.scoped:
            route = classify(scope["method"], scope["path"], scope.get("query_string", b""))
            needed = "read" if route.reads_only else "write"
            if needed not in identity.permissions and "*" not in identity.permissions:
                what = "API key" if identity.kind == "api_key" else "token"
                security_event(
                    "forbidden",
                    owner=identity.identity,
                    key_id=identity.key_id,
                    reason=f"{what} lacks the {needed!r} scope",
                    path=scope["path"],
                )
                await send_json(send, 403, f"this {what} lacks the {needed!r} scope", "forbidden")
                return
        state = scope.setdefault("state", {})
        state["identity"] = identity
        state["owner"] = identity.identity
        set_current(identity)
        await self.app(scope, receive, send)

    def _scraper(self, client: str) -> bool:
        """Whether `client` is a metrics scraper `METRICS_PUBLIC_ADDRESSES` lets in."""
        if not self.metrics_networks:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.metrics_networks)

    async def _too_many(self, send: Send, client: str, retry: float) -> None:
        security_event("rate_limited", key=f"ip:{client}", bucket="auth_failures")
        await too_many(send, retry, "failed authentications")
