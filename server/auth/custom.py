"""Custom auth: the `langgraph_sdk.Auth` object `langgraph.json` names, called as the platform does.

`{"auth": {"path": "./auth.py:auth"}}` points at an `Auth` instance. Its
`@auth.authenticate` handler runs on every non-public request with the
parameters it asks for by name (`request`, `scope`, `path`, `method`,
`path_params`, `query_params`, `headers` as `dict[bytes, bytes]`, `authorization`)
and returns a user id string, a `MinimalUserDict`, or an object with `identity`
(and optionally `permissions`, `display_name`, `is_authenticated`). Raising
`Auth.exceptions.HTTPException` answers with its status and detail.

`@auth.on...` handlers are looked up most-specific first: (resource, action),
(resource, "*"), ("*", action), then the global `@auth.on` handler.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from langgraph_sdk import Auth
from langgraph_sdk.auth.exceptions import HTTPException as AuthHTTPException
from langgraph_sdk.auth.types import AuthContext, Handler
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import Scope

from server.auth.identity import Identity
from server.graph_host.registry import GraphLoadError, add_import_paths, load_module, read_config

__all__ = ["AuthDenied", "AuthHTTPException", "CustomAuth", "load_custom_auth"]

SUPPORTED_PARAMETERS = frozenset(
    {
        "request",
        "scope",
        "path",
        "method",
        "path_params",
        "query_params",
        "headers",
        "authorization",
    }
)


class AuthDenied(Exception):
    """An authorization handler returned False: the platform answers 403."""


class _User:
    """What `@auth.on` handlers see as `ctx.user`: the authenticate result, BaseUser-shaped."""

    def __init__(self, raw: object, identity: Identity) -> None:
        self._raw = raw
        self._identity = identity

    @property
    def identity(self) -> str:
        return self._identity.identity

    @property
    def display_name(self) -> str:
        return self._identity.display_name or self._identity.identity

    @property
    def is_authenticated(self) -> bool:
        return self._identity.is_authenticated

    @property
    def permissions(self) -> tuple[str, ...]:
        return self._identity.permissions

    def _data(self) -> dict[str, object]:
        if isinstance(self._raw, Mapping):
            return dict(self._raw)
        return {
            "identity": self.identity,
            "display_name": self.display_name,
            "is_authenticated": self.is_authenticated,
            "permissions": list(self.permissions),
        }

    def __getitem__(self, key: str) -> object:
        return self._data()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        if isinstance(self._raw, Mapping):
            if name in self._raw:
                return self._raw[name]
            raise AttributeError(name)
        return getattr(self._raw, name)


def _identity_from(result: object) -> Identity:
    if isinstance(result, str):
        raw_identity: object = result
        permissions: object = ()
        display: object = None
        authenticated: object = True
    elif isinstance(result, Mapping):
        raw_identity = result.get("identity")
        permissions = result.get("permissions") or ()
        display = result.get("display_name")
        authenticated = result.get("is_authenticated", True)
    else:
        raw_identity = getattr(result, "identity", None)
        permissions = getattr(result, "permissions", ()) or ()
        display = getattr(result, "display_name", None)
        authenticated = getattr(result, "is_authenticated", True)
    if not isinstance(raw_identity, str) or not raw_identity:
        raise TypeError("the authenticate handler must return an identity string or a user")
    if isinstance(permissions, str):
        permissions = (permissions,)
    if not isinstance(permissions, Iterable):
        raise TypeError("the authenticate handler's permissions are not a list")
    return Identity(
        raw_identity,
        permissions=tuple(str(p) for p in permissions),
        display_name=display if isinstance(display, str) else None,
        is_authenticated=bool(authenticated),
        kind="custom",
    )


@dataclass
class CustomAuth:
    """Adapter around a `langgraph_sdk.Auth` object."""

    auth: Auth
    source: str

    def __post_init__(self) -> None:
        handler = self.auth._authenticate_handler
        self._params: set[str] = set()
        if handler is not None:
            params = set(inspect.signature(handler).parameters)
            unsupported = params - SUPPORTED_PARAMETERS
            if unsupported:
                raise GraphLoadError(
                    f"{self.source}: authenticate handler asks for {sorted(unsupported)}; "
                    f"Trellis passes {sorted(SUPPORTED_PARAMETERS)}"
                )
            self._params = params

    @property
    def has_authenticate(self) -> bool:
        """Whether the object registers an `@auth.authenticate` handler."""
        return self.auth._authenticate_handler is not None

    async def authenticate(self, scope: Scope) -> Identity:
        """Call the authenticate handler; raises `AuthHTTPException` to refuse."""
        handler = self.auth._authenticate_handler
        if handler is None:
            raise AuthHTTPException(401, "no authenticate handler configured")
        headers = dict(scope.get("headers") or [])
        available: dict[str, object] = {
            "scope": scope,
            "path": scope.get("path", ""),
            "method": scope.get("method", ""),
            "path_params": dict(scope.get("path_params") or {}),
            "query_params": QueryParams(scope.get("query_string", b"")),
            "headers": headers,
        }
        if "authorization" in self._params:
            raw = headers.get(b"authorization")
            available["authorization"] = raw.decode("latin-1") if raw else None
        if "request" in self._params:
            available["request"] = Request(scope)
        result = await handler(**{name: available[name] for name in self._params})
        try:
            identity = _identity_from(result)
        except TypeError as exc:
            raise AuthHTTPException(500, "authentication handler returned no identity") from exc
        return Identity(
            identity.identity,
            permissions=identity.permissions,
            display_name=identity.display_name,
            is_authenticated=identity.is_authenticated,
            kind="custom",
            user=_User(result, identity),
        )

    def handler_for(self, resource: str, action: str) -> Handler | None:
        """The most specific `@auth.on` handler for (resource, action), if any."""
        for key in ((resource, action), (resource, "*"), ("*", action)):
            handlers = self.auth._handlers.get(key)
            if handlers:
                return handlers[-1]
        return self.auth._global_handlers[-1] if self.auth._global_handlers else None

    @property
    def has_handlers(self) -> bool:
        """Whether any authorization handler is registered."""
        return bool(self.auth._handlers or self.auth._global_handlers)

    async def authorize(
        self, identity: Identity, resource: str, action: str, value: dict[str, object]
    ) -> Mapping[str, object] | None:
        """Run the handler; None to allow, a filter dict to allow with a filter.

        Raises `AuthDenied` when it returns False, `AuthHTTPException` when it raises one.
        """
        handler = self.handler_for(resource, action)
        if handler is None:
            return None
        user = identity.user if identity.user is not None else _User(None, identity)
        ctx = AuthContext(
            permissions=list(identity.permissions),
            user=user,
            resource=resource,  # type: ignore[arg-type]
            action=action,  # type: ignore[arg-type]
        )
        result = await handler(ctx=ctx, value=value)
        if result is None or result is True:
            return None
        if result is False:
            raise AuthDenied(f"{resource}.{action} denied")
        if isinstance(result, dict):
            return result
        raise AuthHTTPException(500, "authorization handler returned an invalid result")


def load_custom_auth(config_path: Path) -> CustomAuth:
    """Import the `Auth` object named by `langgraph.json`'s `auth.path`."""
    config = read_config(config_path)
    spec_text = (config.auth or {}).get("path")
    if not isinstance(spec_text, str) or ":" not in spec_text:
        raise GraphLoadError(
            f"{config.path}: AUTH_MODE=custom needs an 'auth': {{'path': './auth.py:auth'}} entry"
        )
    file_part, _, variable = spec_text.rpartition(":")
    file = (config.path.parent / file_part).resolve()
    add_import_paths(config)
    module = load_module(file, kind="auth", label="auth")
    auth = getattr(module, variable, None)
    if not isinstance(auth, Auth):
        raise GraphLoadError(f"{file}: {variable!r} is not a langgraph_sdk.Auth instance")
    return CustomAuth(auth, f"{file}:{variable}")
