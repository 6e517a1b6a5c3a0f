"""Authentication and authorization middlewares.

    Authenticate      resolves the caller (none, api_key, jwt or custom) into an `Identity`
                      on `request.state.identity` / `request.state.owner`; 401 otherwise.
                      API keys without the `write` scope may only read.
    CustomAuthorize   runs a `langgraph_sdk.Auth` object's `@auth.on` handlers (custom mode)

Both run before routing, so routes stay unaware of them: every query is already
scoped to the owner, and the handlers can only narrow what an owner reaches.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth import api_keys
from server.auth.custom import AuthDenied, AuthHTTPException, CustomAuth
from server.auth.filters import UnsupportedFilter, contains, merge, to_containment
from server.auth.identity import ANONYMOUS_IDENTITY, Identity, set_current
from server.auth.jwt_bearer import JwtVerifier, TokenRejected
from server.core.audit import security_event
from server.graph_host.registry import system_assistant_id
from server.http.middleware.limits import (
    JSON_STATE,
    RateLimits,
    client_address,
    replay,
    send_json,
    too_many,
)
from server.http.route_table import PUBLIC_PATHS, Route, classify

log = logging.getLogger("trellis.auth")

REALM = 'Bearer realm="trellis"'


class Unauthenticated(Exception):
    """The request carries no acceptable credentials."""

    def __init__(
        self, reason: str, *, status: int = 401, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers


class Authenticator(Protocol):
    """Turns a request into an identity or raises `Unauthenticated`."""

    mode: str

    async def authenticate(self, scope: Scope) -> Identity:
        """The caller's identity."""
        ...


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _engine(scope: Scope) -> AsyncEngine:
    engine: AsyncEngine = scope["app"].state.services.engine
    return engine


class NoAuth:
    """Everyone is `anonymous` (local development only)."""

    mode = "none"

    async def authenticate(self, scope: Scope) -> Identity:
        return ANONYMOUS_IDENTITY


class ApiKeyAuth:
    """Trellis API keys from `x-api-key` (what langgraph-sdk sends) or `Authorization: Bearer`."""

    mode = "api_key"

    async def authenticate(self, scope: Scope) -> Identity:
        presented = _header(scope, b"x-api-key") or _bearer(scope)
        if not presented:
            raise Unauthenticated("missing API key (send it as x-api-key)")
        async with _engine(scope).begin() as conn:
            checked = await api_keys.check(conn, presented.strip())
        if checked.revoked:
            security_event(
                "revoked_key_used",
                key_id=checked.key_id,
                owner=checked.owner,
                client=client_address(scope),
                path=scope["path"],
            )
        if not checked.valid or checked.owner is None:
            raise Unauthenticated("invalid or revoked API key")
        return Identity(
            checked.owner, permissions=checked.scopes, kind="api_key", key_id=checked.key_id
        )


class JwtAuth:
    """JWT bearer tokens checked against the configured JWKS."""

    mode = "jwt"

    def __init__(self, verifier: JwtVerifier) -> None:
        self.verifier = verifier

    async def authenticate(self, scope: Scope) -> Identity:
        token = _bearer(scope)
        if not token:
            raise Unauthenticated("missing bearer token")
        try:
            return await self.verifier.verify(token)
        except TokenRejected as exc:
            raise Unauthenticated(
                str(exc), headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'}
            ) from exc


class CustomAuthn:
    """The `@auth.authenticate` handler of a `langgraph_sdk.Auth` object."""

    mode = "custom"

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


class Authenticate:
    """Resolves every non-public request's identity; refuses unauthenticated ones."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, limits: RateLimits) -> None:
        self.app = app
        self.authenticator = authenticator
        self.limits = limits
        self.checks_credentials = authenticator.mode != "none"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        if self.checks_credentials:
            retry = await self.limits.exhausted("auth_failures", client)
            if retry is not None:
                security_event("rate_limited", key=f"ip:{client}", bucket="auth_failures")
                await too_many(send, retry, "failed authentications")
                return
        try:
            identity = await self.authenticator.authenticate(scope)
        except Unauthenticated as exc:
            security_event(
                "auth_failed",
                mode=self.authenticator.mode,
                reason=exc.reason,
                client=client,
                path=scope["path"],
                method=scope["method"],
            )
            await self.limits.hit("auth_failures", client)
            headers = {"WWW-Authenticate": REALM} if exc.status == 401 else {}
            headers |= exc.headers or {}
            code = {401: "unauthorized", 403: "forbidden"}.get(exc.status, "auth_error")
            await send_json(send, exc.status, exc.reason, code, headers)
            return
        except Exception:
            log.exception("authentication failed unexpectedly", extra={"path": scope["path"]})
            await send_json(send, 500, "authentication failed; see the server log", "auth_error")
            return
        if identity.kind == "api_key":
            route = classify(scope["method"], scope["path"], scope.get("query_string", b""))
            needed = "read" if route.reads_only else "write"
            if needed not in identity.permissions and "*" not in identity.permissions:
                security_event(
                    "forbidden",
                    owner=identity.identity,
                    key_id=identity.key_id,
                    reason=f"key lacks the {needed!r} scope",
                    path=scope["path"],
                )
                await send_json(send, 403, f"this API key lacks the {needed!r} scope", "forbidden")
                return
        state = scope.setdefault("state", {})
        state["identity"] = identity
        state["owner"] = identity.identity
        set_current(identity)
        await self.app(scope, receive, send)


# --- custom authorization -------------------------------------------------------------


def _uuid_or_raw(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    return value


def _namespace(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part for part in value.split(".") if part)
    if isinstance(value, list | tuple):
        return tuple(str(part) for part in value)
    return ()


_STORE_NAMESPACE_FIELD = {
    "put": "namespace",
    "get": "namespace",
    "delete": "namespace",
    "search": "namespace_prefix",
    "list_namespaces": "prefix",
}


def _value(
    route: Route, action: str, item: dict[str, Any], query: dict[str, str], *, cancel: bool
) -> dict[str, Any]:
    """The `value` the platform hands a handler for this resource and action."""
    thread_id = _uuid_or_raw(route.thread_id or item.get("thread_id"))
    if route.resource == "store":
        field = _STORE_NAMESPACE_FIELD[action]
        raw_ns = query.get("namespace") if action == "get" else item.get(field)
        value: dict[str, Any] = {
            k: item.get(k) for k in ("key", "value", "index", "filter", "limit", "offset", "query")
        }
        if action == "get":
            value["key"] = query.get("key")
        value = {k: v for k, v in value.items() if v is not None}
        value["namespace"] = _namespace(raw_ns)
        return value
    if route.resource == "assistants":
        assistant_id = _uuid_or_raw(route.assistant_id or item.get("assistant_id"))
        if action == "search":
            return {
                "graph_id": item.get("graph_id"),
                "metadata": dict(item.get("metadata") or {}),
                "limit": item.get("limit", 10),
                "offset": item.get("offset", 0),
            }
        if action in ("read", "delete"):
            return {"assistant_id": assistant_id}
        fields = ("graph_id", "config", "context", "name", "version", "if_exists", "description")
        return {
            "assistant_id": assistant_id,
            "metadata": dict(item.get("metadata") or {}),
            **{k: item[k] for k in fields if k in item},
        }
    if action == "create_run":
        rest = {k: v for k, v in item.items() if k != "metadata"}
        return {
            "thread_id": thread_id,
            "assistant_id": _uuid_or_raw(item.get("assistant_id")),
            "run_id": None,
            "status": "pending",
            "metadata": dict(item.get("metadata") or {}),
            "prevent_insert_if_inflight": True,
            "multitask_strategy": item.get("multitask_strategy", "enqueue"),
            "if_not_exists": item.get("if_not_exists", "reject"),
            "after_seconds": item.get("after_seconds", 0),
            "kwargs": rest,
            "action": None,
        }
    if action == "search":
        return {
            "metadata": dict(item.get("metadata") or {}),
            "values": item.get("values") or {},
            "status": item.get("status"),
            "limit": item.get("limit", 10),
            "offset": item.get("offset", 0),
            "ids": [_uuid_or_raw(i) for i in item.get("ids") or []] or None,
            "thread_id": None,
        }
    if action == "create":
        return {
            "thread_id": _uuid_or_raw(item.get("thread_id")) if not route.thread_id else thread_id,
            "metadata": dict(item.get("metadata") or {}),
            "if_exists": item.get("if_exists", "raise"),
            **({"ttl": item["ttl"]} if "ttl" in item else {}),
        }
    if action == "update":
        value = {"thread_id": thread_id}
        if "metadata" in item:
            value["metadata"] = dict(item.get("metadata") or {})
        if cancel:
            value["action"] = query.get("action", "interrupt")
        return value
    return {"thread_id": thread_id, "run_id": _uuid_or_raw(route.run_id)}


class CustomAuthorize:
    """Applies `@auth.on` handlers: False → 403, a filter → narrower results or 404,
    and changes a handler makes to `value["metadata"]` (or a store namespace) → the request."""

    def __init__(self, app: ASGIApp, *, custom: CustomAuth) -> None:
        self.app = app
        self.custom = custom

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        identity: Identity | None = state.get("identity")
        if scope["type"] != "http" or identity is None or not self.custom.has_handlers:
            await self.app(scope, receive, send)
            return
        route = classify(scope["method"], scope["path"], scope.get("query_string", b""))
        if route.resource is None:
            await self.app(scope, receive, send)
            return
        body = state.get(JSON_STATE)
        items: list[Any] = body if isinstance(body, list) else [body if body is not None else {}]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        cancel = scope["path"].endswith("/cancel")
        changed = False
        try:
            for action in route.actions:
                for item in items:
                    if not isinstance(item, dict):
                        continue
                    value = _value(route, action, item, query, cancel=cancel)
                    before = orjson.dumps(value, default=str)
                    result = await self.custom.authorize(identity, route.resource, action, value)
                    if orjson.dumps(value, default=str) != before:
                        changed |= self._write_back(route, action, item, value, query)
                    if result is None:
                        continue
                    answer = await self._apply_filter(scope, route, action, item, result, identity)
                    if answer is not None:
                        await answer(send)
                        return
                    changed = changed or action == "search"
        except AuthDenied as exc:
            security_event(
                "forbidden", owner=identity.identity, reason=str(exc), path=scope["path"]
            )
            await send_json(send, 403, "Forbidden", "forbidden")
            return
        except AuthHTTPException as exc:
            code = "forbidden" if exc.status_code == 403 else "auth_error"
            await send_json(send, exc.status_code, str(exc.detail), code, dict(exc.headers or {}))
            return
        except UnsupportedFilter as exc:
            log.error("authorization filter not supported", extra={"error": str(exc)})
            await send_json(send, 500, f"authorization filter not supported: {exc}", "auth_error")
            return
        if changed:
            if body is None and scope["method"] in ("POST", "PUT", "PATCH"):
                body = items[0]
            scope, receive = self._rewrite(scope, receive, body, query, route)
        await self.app(scope, receive, send)

    def _write_back(
        self,
        route: Route,
        action: str,
        item: dict[str, Any],
        value: dict[str, Any],
        query: dict[str, str],
    ) -> bool:
        if route.resource == "store":
            namespace = list(_namespace(value.get("namespace")))
            if action == "get":
                query["namespace"] = ".".join(namespace)
            else:
                item[_STORE_NAMESPACE_FIELD[action]] = namespace
            return True
        if "metadata" in value and isinstance(value["metadata"], dict):
            item["metadata"] = value["metadata"]
            return True
        return False

    async def _apply_filter(
        self,
        scope: Scope,
        route: Route,
        action: str,
        item: dict[str, Any],
        result: dict[str, Any],
        identity: Identity,
    ) -> Callable[[Send], Awaitable[None]] | None:
        if route.resource == "store":
            raise UnsupportedFilter(
                "store handlers must scope value['namespace'] instead of returning a filter"
            )
        wanted = to_containment(result)
        if action == "search":
            merged = merge(dict(item.get("metadata") or {}), wanted)
            if merged is None:
                empty = b"0" if route.counts else b"[]"
                return lambda send: _send_raw(send, empty)
            item["metadata"] = merged
            return None
        metadata = await self._metadata(scope, route, item, identity.identity)
        if metadata is not None and not contains(metadata, wanted):
            security_event(
                "forbidden",
                owner=identity.identity,
                reason=f"{route.resource}.{action} filtered out",
                path=scope["path"],
            )
            what = "assistant" if route.resource == "assistants" else "thread"
            return lambda send: send_json(send, 404, f"{what} not found", "not_found")
        return None

    async def _metadata(
        self, scope: Scope, route: Route, item: dict[str, Any], owner: str
    ) -> dict[str, Any] | None:
        """The metadata of the addressed resource, if it exists for this owner."""
        if route.resource == "assistants":
            raw = route.assistant_id or item.get("assistant_id")
            if not isinstance(raw, str):
                return None
            try:
                aid = uuid.UUID(raw)
            except ValueError:
                aid = system_assistant_id(raw)
            sql = (
                "SELECT metadata FROM assistants WHERE assistant_id = :id "
                "AND (owner IS NULL OR owner = :owner)"
            )
            params: dict[str, Any] = {"id": aid, "owner": owner}
        else:
            raw = route.thread_id or item.get("thread_id")
            if not isinstance(raw, str):
                return None
            try:
                tid = uuid.UUID(raw)
            except ValueError:
                return None
            sql = "SELECT metadata FROM threads WHERE thread_id = :id AND owner = :owner"
            params = {"id": tid, "owner": owner}
        async with _engine(scope).connect() as conn:
            found: dict[str, Any] | None = (await conn.execute(text(sql), params)).scalar()
        return found

    def _rewrite(
        self,
        scope: Scope,
        receive: Receive,
        body: Any,
        query: dict[str, str],
        route: Route,
    ) -> tuple[Scope, Receive]:
        scope = dict(scope)
        if route.resource == "store" and scope["method"] == "GET":
            scope["query_string"] = urlencode(query).encode()
            return scope, receive
        if body is None:
            return scope, receive
        raw = orjson.dumps(body)
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        scope["headers"] = headers
        return scope, replay(raw, receive)


async def _send_raw(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
