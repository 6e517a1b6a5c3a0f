"""`http.app`: the user's own Starlette/FastAPI app, served beside Trellis' routes.

As the official server (`langgraph_api.server`, `langgraph_api.api.load_custom_app`):

* The app is named `./file.py:variable` (relative to the `langgraph.json`) or
  `package.module:variable`, and must be a Starlette (or FastAPI) application. One that
  cannot be imported stops the start with one line naming the file and the error.
* Its routes come before Trellis' API routes, so they may shadow them, but never the
  health, metrics and docs routes (`/ok`, `/ready`, `/metrics`, `/docs`, `/openapi.json`:
  the official `unshadowable_meta_routes`; `/info` may be shadowed). With
  `http.disable_meta` those are gone and only `/ready` stays unshadowable. A route that matches
  only the path (another method) answers for it only if no Trellis route takes the request,
  as a Starlette router resolves a partial match.
* Its routes are authenticated by Trellis only with `http.enable_custom_route_auth`; the
  caller is then on `request.user` and `request.auth.scopes` as on the official server
  (and on `request.state.identity`). Authorization handlers (`@auth.on`) are for the API's
  resources and do not run for custom routes, as on the official server.
* Its middleware (`app.user_middleware`) wraps every route, Trellis' too, outside CORS and
  authentication (`middleware_first`), inside the `AUTH_MODE=none` local-only check, the
  security headers and the request id; its lifespan runs inside Trellis' (after the
  services open); its exception handlers serve its routes.
* Its routes are in `/openapi.json`, its definitions winning where both define a path's
  method (the official `merge_openapi_specs`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match
from starlette.schemas import SchemaGenerator
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth.authenticators import REALM, Authenticator, Unauthenticated
from server.auth.identity import Identity, set_current
from server.graph_host.config_keys import ConfigKeyError
from server.graph_host.registry import GraphConfig, GraphLoadError, add_import_paths, load_module
from server.http.asgi import send_json
from server.http.route_table import METRICS_PATH, PUBLIC_PATHS

UNSHADOWABLE = (PUBLIC_PATHS - {"/info"}) | {METRICS_PATH, "/ready"}
"""Paths a custom route never shadows: health, metrics and the docs (`/info` it may)."""
UNSHADOWABLE_WITHOUT_META = frozenset({"/ready"})
"""With `http.disable_meta` the official server has no unshadowable route (even `/ok` may be
shadowed); `/ready` is Trellis' own readiness probe and stays."""


OpenAPI = dict[str, Any]  # Any: an OpenAPI document, typed as FastAPI and Starlette type it
_JS_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx")


class CustomAppError(ConfigKeyError):
    """`http.app` cannot be served; the message is the one line to print."""


@dataclass
class CustomApp:
    """A loaded `http.app` and how it is served."""

    app: Starlette
    spec: str
    authenticated: bool
    middleware: list[Middleware] = field(default_factory=list)
    unshadowable: frozenset[str] = UNSHADOWABLE
    """The app's own middleware, moved out to wrap every route."""


def load_custom_app(config: GraphConfig, http: Mapping[str, object]) -> CustomApp | None:
    """The app `http.app` names, or None when there is none; `CustomAppError` if it cannot load."""
    spec = http.get("app")
    if spec is None:
        return None
    where = f"{config.path}: http.app"
    if not isinstance(spec, str) or ":" not in spec:
        raise CustomAppError(f"{where}: expected './path/to/file.py:app', got {spec!r}")
    for key, value in config.env.items():
        os.environ.setdefault(key, value)  # as for graphs: the app may read its env at import
    add_import_paths(config)
    module_part, _, name = spec.rpartition(":")
    if module_part.endswith(_JS_SUFFIXES):
        raise CustomAppError(
            f"{where}: {module_part!r} is JavaScript; Trellis serves Python apps only "
            "(the official server proxies JS apps to its Node runtime)"
        )
    try:
        if module_part.endswith(".py") or "/" in module_part:
            module = load_module(
                (config.path.parent / module_part).resolve(), kind="http_app", label="http.app"
            )
        else:
            module = importlib.import_module(module_part)
    except GraphLoadError as exc:  # names the file, `http.app` and the error
        raise CustomAppError(str(exc)) from exc
    except Exception as exc:
        raise CustomAppError(
            f"{where}: import of {module_part!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    app = getattr(module, name, None)
    if app is None:
        raise CustomAppError(f"{where}: no variable {name!r} in {module_part!r}")
    if not isinstance(app, Starlette):
        raise CustomAppError(
            f"{where}: {name!r} in {module_part!r} is a {type(app).__name__}, not a Starlette "
            "or FastAPI application"
        )
    middleware = list(app.user_middleware)
    # Built lazily on the first request: without them its stack is routes and handlers only.
    app.user_middleware = []
    authenticated = http.get("enable_custom_route_auth") is True
    meta_off = http.get("disable_meta") is True
    unshadowable = UNSHADOWABLE_WITHOUT_META if meta_off else UNSHADOWABLE
    return CustomApp(app, spec, authenticated, middleware, unshadowable)


def _matches(routes: Sequence[BaseRoute], scope: Scope) -> Match:
    best = Match.NONE
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return match
        if match == Match.PARTIAL:
            best = match
    return best


@dataclass(frozen=True)
class _User:
    """`request.user` on a custom route when the caller is not a custom handler's user."""

    identity: str
    display_name: str
    permissions: Sequence[str]
    is_authenticated: bool = True


class CustomRoutes:
    """ASGI: serves the requests the custom app's routes take; passes the others on."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        custom: CustomApp,
        api_routes: Callable[[], Sequence[BaseRoute]],
        authenticator: Authenticator | None = None,
    ) -> None:
        self.app = app
        self.custom = custom
        self.api_routes = api_routes
        self.authenticator = authenticator
        """Set when the custom routes are authenticated: what `Authenticate` passes on
        unchecked (websockets, public paths) is authenticated here."""

    def takes(self, scope: Scope) -> bool:
        """Whether the custom app serves this request."""
        if scope["path"] in self.custom.unshadowable:
            return False
        match = _matches(self.custom.app.router.routes, scope)
        if match == Match.FULL:
            return True
        return match == Match.PARTIAL and _matches(self.api_routes(), scope) != Match.FULL

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.takes(scope):
            await self.app(scope, receive, send)
            return
        # OPTIONS is never authenticated (`Authenticate`): a preflight carries no credentials.
        unchecked = "identity" not in scope.get("state", {}) and scope.get("method") != "OPTIONS"
        if self.authenticator is not None and unchecked:
            # Websockets, and the paths `Authenticate` lets through (`/ok` once `disable_meta`
            # lets a custom route take it), are authenticated here.
            try:
                found = await self.authenticator.authenticate(scope)
            except Unauthenticated as exc:
                if scope["type"] == "websocket":
                    reason = exc.reason[:120]
                    await send({"type": "websocket.close", "code": 1008, "reason": reason})
                else:
                    headers = {"WWW-Authenticate": REALM} if exc.status == 401 else {}
                    code = {401: "unauthorized", 403: "forbidden"}.get(exc.status, "auth_error")
                    await send_json(
                        send, exc.status, exc.reason, code, headers | (exc.headers or {})
                    )
                return
            scope.setdefault("state", {}).update(identity=found, owner=found.identity)
            set_current(found)
        identity = scope.get("state", {}).get("identity")
        if isinstance(identity, Identity):
            scope["user"] = identity.user or _User(
                identity.identity, identity.display_name or identity.identity, identity.permissions
            )
            scope["auth"] = AuthCredentials(list(identity.permissions))
        await self.custom.app(scope, receive, send)


def install_outer(app: FastAPI, custom: CustomApp | None) -> None:
    """Serve unauthenticated custom routes: outside authentication, inside CORS."""
    if custom is not None and not custom.authenticated:
        app.add_middleware(CustomRoutes, custom=custom, api_routes=lambda: app.router.routes)


def install_authenticated(app: FastAPI, custom: CustomApp | None) -> None:
    """Serve authenticated custom routes: added just before `Authenticate`, so inside it."""
    if custom is not None and custom.authenticated:
        app.add_middleware(
            CustomRoutes,
            custom=custom,
            api_routes=lambda: app.router.routes,
            authenticator=app.state.authenticator,
        )


def install_openapi(app: FastAPI, custom: CustomApp | None) -> None:
    """Add the custom app's routes to `/openapi.json`, its definitions winning where both
    define a path's method, as the official `update_openapi_spec` and
    `merge_openapi_specs` do: a FastAPI app's own schema, else what Starlette's
    `SchemaGenerator` reads from its routes' docstrings. Paths it cannot shadow are left out."""
    if custom is None:
        return
    trellis_openapi = app.openapi

    def merged_openapi() -> OpenAPI:
        if app.openapi_schema is None:
            app.openapi_schema = merge_openapi(trellis_openapi(), custom_openapi(custom))
        return app.openapi_schema

    app.openapi = merged_openapi  # type: ignore[method-assign]


def custom_openapi(custom: CustomApp) -> OpenAPI:
    """The custom app's OpenAPI document, without the paths Trellis keeps for itself."""
    if isinstance(custom.app, FastAPI):
        spec = custom.app.openapi()
    else:
        generator = SchemaGenerator({"openapi": "3.1.0", "info": {"title": custom.spec}})
        spec = generator.get_schema(routes=custom.app.routes)
    paths = spec.get("paths") or {}
    return {**spec, "paths": {p: v for p, v in paths.items() if p not in custom.unshadowable}}


def merge_openapi(base: OpenAPI, extra: OpenAPI) -> OpenAPI:
    """`base` with `extra`'s paths (method by method) and components added, `extra` winning."""
    merged = {**base, "paths": dict(base.get("paths") or {})}
    for path, methods in (extra.get("paths") or {}).items():
        merged["paths"][path] = {**merged["paths"].get(path, {}), **methods}
    components = dict(base.get("components") or {})
    for kind, entries in (extra.get("components") or {}).items():
        components[kind] = {**components.get(kind, {}), **entries}
    if components:
        merged["components"] = components
    tags = {tag["name"]: tag for tag in base.get("tags") or []}
    tags.update({tag["name"]: tag for tag in extra.get("tags") or []})
    if tags:
        merged["tags"] = list(tags.values())
    return merged


def install_middleware(app: FastAPI, custom: CustomApp | None) -> None:
    """Wrap every route in the custom app's middleware, its first one outermost."""
    if custom is None:
        return
    for item in reversed(custom.middleware):
        app.add_middleware(item.cls, *item.args, **item.kwargs)
