"""ASGI: runs a `langgraph_sdk.Auth` object's `@auth.on` handlers (custom mode).

It runs before routing, with the identity `Authenticate` resolved and the body `BodyGuard`
parsed, so routes stay unaware of it: the handlers can only narrow what an owner reaches.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth.custom import AuthDenied, AuthHTTPException, CustomAuth
from server.auth.filters import UnsupportedFilter, contains, merge, to_containment
from server.auth.identity import Identity
from server.core.audit import security_event
from server.core.types import Json, JsonObject
from server.db import owners
from server.graph_host.registry import system_assistant_id
from server.http.asgi import JSON_STATE, replay, send_json
from server.http.route_table import Route, classify

log = logging.getLogger("trellis.auth")


def _uuid_or_raw(value: object) -> object:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    return value


def _namespace(value: object) -> tuple[str, ...]:
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
    route: Route, action: str, item: Json, query: dict[str, str], *, cancel: bool
) -> dict[str, object]:
    """The `value` the platform hands a handler for this resource and action."""
    thread_id = _uuid_or_raw(route.thread_id or item.get("thread_id"))
    if route.resource == "store":
        field = _STORE_NAMESPACE_FIELD[action]
        raw_ns = query.get("namespace") if action == "get" else item.get(field)
        value: dict[str, object] = {
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
    if action == "delete" and _prunes(route, item):
        # As the official server's prune: one `delete` event naming every thread.
        return {"thread_ids": [_uuid_or_raw(t) for t in item["thread_ids"]]}
    return {"thread_id": thread_id, "run_id": _uuid_or_raw(route.run_id)}


def command_item(body: object) -> Json:
    """What the `threads.create_run` handler reads of a protocol command (`POST .../commands`,
    a websocket's `run.start` / `input.respond`): its `params`, the run's arguments as the
    official server hands them to `Runs.put` (`event_streaming/service.py`
    `_create_or_resume_run`: `assistant_id`, `input`, `config`, `metadata`), so a handler sees
    the command's input and its changes to `metadata` reach the run. The object returned is
    the command's own `params` (created empty when the command has none)."""
    if not isinstance(body, dict):
        return {}
    params = body.get("params")
    if not isinstance(params, dict):
        params = body["params"] = {}
    return params


Verdict = tuple[int, str, str]
"""A refusal: HTTP status, detail, error code."""


@dataclass
class ThreadAuthorizer:
    """The `@auth.on` handlers of the thread websocket, which no middleware sees:
    `threads.read` as it opens, `threads.create_run` for each command that starts a run."""

    custom: CustomAuth
    engine: Callable[[], AsyncEngine]

    async def check(
        self, identity: Identity, action: str, thread_id: str, item: Json | None = None
    ) -> Verdict | None:
        """None when the handler allows `action` on the thread; else why not. Changes the
        handler makes to `value["metadata"]` are written back to `item`."""
        where = f"/threads/{thread_id}/stream/events"
        route = Route(resource="threads", actions=(action,), thread_id=thread_id)
        value = _value(route, action, item if item is not None else {}, {}, cancel=False)
        try:
            result = await self.custom.authorize(identity, "threads", action, value)
        except AuthDenied as exc:
            security_event("forbidden", owner=identity.identity, reason=str(exc), path=where)
            return 403, "Forbidden", "forbidden"
        except AuthHTTPException as exc:
            code = "forbidden" if exc.status_code == 403 else "auth_error"
            return exc.status_code, str(exc.detail), code
        except UnsupportedFilter as exc:
            return 500, f"authorization filter not supported: {exc}", "auth_error"
        if item is not None and isinstance(value.get("metadata"), dict):
            item["metadata"] = value["metadata"]
        if result is None:
            return None
        try:
            wanted = to_containment(result)
            tid = uuid.UUID(thread_id)
        except UnsupportedFilter as exc:
            return 500, f"authorization filter not supported: {exc}", "auth_error"
        except ValueError:
            return 404, "thread not found", "not_found"
        async with self.engine().connect() as conn:
            metadata = await owners.metadata_of(conn, "thread", tid, identity.identity)
        if metadata is not None and not contains(metadata, wanted):
            security_event(
                "forbidden",
                owner=identity.identity,
                reason=f"threads.{action} filtered out",
                path=where,
            )
            return 404, "thread not found", "not_found"
        return None


def _prunes(route: Route, item: Json) -> bool:
    """Whether the request is `POST /threads/prune` (a delete of the threads it lists)."""
    return route.thread_id is None and isinstance(item.get("thread_ids"), list)


class CustomAuthorize:
    """Applies `@auth.on` handlers: False → 403, a filter → narrower results or 404,
    and changes a handler makes to `value["metadata"]` (or a store namespace) → the request."""

    def __init__(
        self, app: ASGIApp, *, custom: CustomAuth, engine: Callable[[], AsyncEngine]
    ) -> None:
        self.app = app
        self.custom = custom
        self.engine = engine
        """The engine of Trellis' tables (a getter: it opens after the app is built)."""

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
        items: list[object] = body if isinstance(body, list) else [body if body is not None else {}]
        if route.commands:  # the handler reads the command's run arguments, and writes them
            items = [command_item(body)]
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
            if body is not None:  # what the route reads (`CheckedRoute`), handlers' changes in
                scope.setdefault("state", {})[JSON_STATE] = body
            scope, receive = self._rewrite(scope, receive, body, query, route)
        await self.app(scope, receive, send)

    def _write_back(
        self,
        route: Route,
        action: str,
        item: Json,
        value: dict[str, object],
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
        item: Json,
        result: Mapping[str, object],
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
        if action == "delete" and _prunes(route, item):
            # Every listed thread must pass the filter, or none is pruned (as officially).
            for raw in item["thread_ids"]:
                metadata = await self._metadata(route, {"thread_id": raw}, identity.identity)
                if metadata is not None and not contains(metadata, wanted):
                    security_event(
                        "forbidden",
                        owner=identity.identity,
                        reason="threads.delete filtered out (prune)",
                        path=scope["path"],
                    )
                    return lambda send: send_json(
                        send, 404, "at least one thread not found or not authorized", "not_found"
                    )
            return None
        metadata = await self._metadata(route, item, identity.identity)
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

    async def _metadata(self, route: Route, item: Json, owner: str) -> JsonObject | None:
        """The metadata of the addressed resource, if it exists for this owner."""
        if route.resource == "assistants":
            raw = route.assistant_id or item.get("assistant_id")
            if not isinstance(raw, str):
                return None
            try:
                aid = uuid.UUID(raw)
            except ValueError:
                aid = system_assistant_id(raw)
            async with self.engine().connect() as conn:
                return await owners.metadata_of(conn, "assistant", aid, owner)
        raw = route.thread_id or item.get("thread_id")
        if not isinstance(raw, str):
            return None
        try:
            tid = uuid.UUID(raw)
        except ValueError:
            return None
        async with self.engine().connect() as conn:
            return await owners.metadata_of(conn, "thread", tid, owner)

    def _rewrite(
        self,
        scope: Scope,
        receive: Receive,
        body: object,
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
