"""Authenticators: a request's credentials → an `Identity`, one class per `AUTH_MODE`.

    NoAuth       everyone is `anonymous` (local development only)
    ApiKeyAuth   Trellis API keys from `x-api-key` or `Authorization: Bearer`
    JwtAuth      JWT bearer tokens checked against the configured JWKS
    CustomAuthn  the `@auth.authenticate` handler of a `langgraph_sdk.Auth` object

Each raises `Unauthenticated` to refuse (`RevokedKey` for a revoked API key). They read
the request's headers from its ASGI scope and get anything else (the database) from
their constructor; `server.http.middleware.authenticate` adapts them to ASGI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Scope

from server.auth import api_keys
from server.auth.custom import AuthHTTPException, CustomAuth
from server.auth.identity import ANONYMOUS_IDENTITY, Identity
from server.auth.jwt_bearer import MAX_TOKEN_BYTES, JwtVerifier, TokenRejected
from server.core.settings import AuthMode

REALM = 'Bearer realm="trellis"'
"""The `WWW-Authenticate` challenge of a 401."""


class Unauthenticated(Exception):
    """The request carries no acceptable credentials."""

    def __init__(
        self, reason: str, *, status: int = 401, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers


class RevokedKey(Unauthenticated):
    """A revoked API key was presented (a security event beyond a plain failure)."""

    def __init__(self, reason: str, *, key_id: str | None, owner: str | None) -> None:
        super().__init__(reason)
        self.key_id = key_id
        self.owner = owner


class Authenticator(Protocol):
    """Turns a request into an identity or raises `Unauthenticated`."""

    mode: AuthMode

    async def authenticate(self, scope: Scope) -> Identity:
        """The caller's identity."""
        ...


def request_header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower-case bytes, as ASGI spells it), if any."""
    for key, value in scope.get("headers") or []:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def bearer_token(scope: Scope) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    value = request_header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def bounded(token: str) -> str:
    """`token`, unless it is too long to be one (`Unauthenticated` before it is parsed)."""
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthenticated(f"credential longer than {MAX_TOKEN_BYTES} bytes")
    return token


class NoAuth:
    """Everyone is `anonymous` (local development only)."""

    mode: AuthMode = "none"

    async def authenticate(self, scope: Scope) -> Identity:
        return ANONYMOUS_IDENTITY


class ApiKeyAuth:
    """Trellis API keys from `x-api-key` (what langgraph-sdk sends) or `Authorization: Bearer`."""

    mode: AuthMode = "api_key"

    def __init__(self, engine: Callable[[], AsyncEngine]) -> None:
        self.engine = engine
        """The engine of Trellis' tables (a getter: it opens after the app is built)."""

    async def authenticate(self, scope: Scope) -> Identity:
        presented = request_header(scope, b"x-api-key") or bearer_token(scope)
        if not presented:
            raise Unauthenticated("missing API key (send it as x-api-key)")
        presented = bounded(presented.strip())
        async with self.engine().begin() as conn:
            checked = await api_keys.check(conn, presented)
        if checked.revoked:
            raise RevokedKey(
                "invalid or revoked API key", key_id=checked.key_id, owner=checked.owner
            )
        if not checked.valid or checked.owner is None:
            raise Unauthenticated("invalid or revoked API key")
        return Identity(
            checked.owner, permissions=checked.scopes, kind="api_key", key_id=checked.key_id
        )


class JwtAuth:
    """JWT bearer tokens checked against the configured JWKS."""

    mode: AuthMode = "jwt"

    def __init__(self, verifier: JwtVerifier) -> None:
        self.verifier = verifier

    async def authenticate(self, scope: Scope) -> Identity:
        token = bearer_token(scope)
        if not token:
            raise Unauthenticated("missing bearer token")
        try:
            return await self.verifier.verify(bounded(token))
        except TokenRejected as exc:
            raise Unauthenticated(
                str(exc), headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'}
            ) from exc


class CustomAuthn:
    """The `@auth.authenticate` handler of a `langgraph_sdk.Auth` object."""

    mode: AuthMode = "custom"

    def __init__(self, custom: CustomAuth) -> None:
        self.custom = custom

    async def authenticate(self, scope: Scope) -> Identity:
        if not self.custom.has_authenticate:
            return Identity(ANONYMOUS_IDENTITY.identity, is_authenticated=False, kind="custom")
        try:
            return await self.custom.authenticate(scope)
        except AuthHTTPException as exc:
            raise Unauthenticated(
                str(exc.detail), status=exc.status_code, headers=dict(exc.headers or {})
            ) from exc
