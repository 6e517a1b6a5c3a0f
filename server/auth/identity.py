"""Who is calling: the identity every request resolves to, and how it reaches runs."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypedDict, cast

if TYPE_CHECKING:
    from langgraph_sdk.auth.types import BaseUser

ANONYMOUS = "anonymous"
"""The owner of every resource while authentication is off."""

IdentityKind = Literal["anonymous", "api_key", "jwt", "custom"]
"""Where an identity came from."""


class AuthUser(TypedDict):
    """The `langgraph_auth_user` graphs see in `config["configurable"]` (a `MinimalUserDict`)."""

    identity: str
    display_name: str
    is_authenticated: bool
    permissions: list[str]


class AuthConfigurable(TypedDict):
    """The keys Trellis sets in a run's `configurable` to say who is calling."""

    user_id: str
    langgraph_auth_user_id: str
    langgraph_auth_user: AuthUser
    langgraph_auth_permissions: list[str]


@dataclass(frozen=True)
class Identity:
    """An authenticated caller; `identity` is the owner of what it creates and sees."""

    identity: str
    permissions: tuple[str, ...] = ()
    display_name: str | None = None
    is_authenticated: bool = True
    kind: IdentityKind = "api_key"
    key_id: str | None = None
    """The API key's public id, for logs."""
    permissions_claimed: bool = True
    """False for a JWT without the permissions claim: nothing says what it may do, so it is not
    bound to `read`/`write` (tokens minted before the claim was read keep working)."""
    user: BaseUser | None = field(default=None, compare=False, repr=False)
    """What a custom `@auth.authenticate` handler returned, for its `@auth.on` handlers."""

    @property
    def scoped(self) -> bool:
        """Whether `permissions` bound what the caller may do: `read` for reads, `write` for
        changes (`*` for both). API keys and JWTs carrying the permissions claim are; custom
        handlers authorize with their own `@auth.on` handlers instead."""
        return self.kind in ("api_key", "jwt") and self.permissions_claimed

    def as_user(self) -> AuthUser:
        """The `langgraph_auth_user` dict graphs see in `config["configurable"]`."""
        return {
            "identity": self.identity,
            "display_name": self.display_name or self.identity,
            "is_authenticated": self.is_authenticated,
            "permissions": list(self.permissions),
        }


ANONYMOUS_IDENTITY = Identity(ANONYMOUS, is_authenticated=False, kind="anonymous")

_current: ContextVar[Identity | None] = ContextVar("trellis_identity", default=None)


def set_current(identity: Identity) -> None:
    """Record the identity of the request being handled (set by the auth middleware)."""
    _current.set(identity)


def current() -> Identity | None:
    """The identity of the request being handled, if any."""
    return _current.get()


def auth_user_for_run(owner: str) -> AuthUser:
    """What a new run persists (in its kwargs) so any worker can rebuild the caller's identity."""
    identity = current()
    if identity is not None and identity.identity == owner:
        return identity.as_user()
    return Identity(owner, is_authenticated=owner != ANONYMOUS, kind="anonymous").as_user()


def auth_configurable(run: Mapping[str, object]) -> AuthConfigurable:
    """The `langgraph_auth_*` and `user_id` keys of a run's `configurable`.

    Set after the client's own `configurable`, so a request cannot impersonate anyone.
    """
    owner = str(run["owner"])
    kwargs = cast("Mapping[str, object]", run.get("kwargs") or {})
    stored = kwargs.get("auth_user")
    if isinstance(stored, dict) and stored.get("identity") == owner:
        user = cast(AuthUser, stored)  # what `auth_user_for_run` stored with the run
    else:
        user = Identity(owner, is_authenticated=owner != ANONYMOUS, kind="anonymous").as_user()
    return {
        "user_id": owner,
        "langgraph_auth_user_id": owner,
        "langgraph_auth_user": user,
        "langgraph_auth_permissions": list(user.get("permissions") or []),
    }
