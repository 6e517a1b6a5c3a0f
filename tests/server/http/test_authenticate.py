"""The Authenticate middleware over a fake authenticator: refusals, events, key scopes."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from server.auth.authenticators import REALM, RevokedKey, Unauthenticated
from server.auth.identity import Identity, IdentityKind
from server.core.settings import AuthMode, Settings
from server.http.middleware.authenticate import Authenticate
from server.http.middleware.limits import RateLimits


class Fake:
    """Answers with `result`: an identity, or an exception to raise."""

    mode: AuthMode = "api_key"

    def __init__(self, result: Identity | Exception) -> None:
        self.result = result
        self.calls = 0

    async def authenticate(self, scope: Scope) -> Identity:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class Echo:
    """An app that answers the owner the middleware put on the scope."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner = (scope.get("state") or {}).get("owner", "-")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(owner).encode()})


async def call(authenticator: Fake, method: str, path: str) -> httpx.Response:
    limits = RateLimits(Settings(environment="test", rate_limit_enabled=False))
    app = Authenticate(Echo(), authenticator=authenticator, limits=limits)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.request(method, path)


async def test_public_paths_skip_authentication() -> None:
    fake = Fake(Unauthenticated("no"))
    response = await call(fake, "GET", "/ok")
    assert (response.status_code, response.text, fake.calls) == (200, "-", 0)


async def test_an_identity_becomes_the_owner() -> None:
    response = await call(Fake(Identity("ann", kind="custom")), "POST", "/threads")
    assert (response.status_code, response.text) == (200, "ann")


async def test_a_401_challenges_and_keeps_the_authenticators_headers() -> None:
    refusal = Unauthenticated("bad token", headers={"WWW-Authenticate": "Bearer x"})
    response = await call(Fake(refusal), "GET", "/threads/t")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer x"
    assert response.json() == {"detail": "bad token", "code": "unauthorized"}
    plain = await call(Fake(Unauthenticated("missing")), "GET", "/threads/t")
    assert plain.headers["www-authenticate"] == REALM


@pytest.mark.parametrize(("status", "code"), [(403, "forbidden"), (418, "auth_error")])
async def test_other_refusals_carry_no_challenge(status: int, code: str) -> None:
    response = await call(Fake(Unauthenticated("no", status=status)), "GET", "/threads/t")
    assert response.status_code == status
    assert "www-authenticate" not in response.headers
    assert response.json()["code"] == code


async def test_a_revoked_key_is_its_own_security_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="trellis.security")
    refusal = RevokedKey("invalid or revoked API key", key_id="abc123", owner="ann")
    response = await call(Fake(refusal), "GET", "/threads/t")
    assert response.status_code == 401
    events = [r for r in caplog.records if getattr(r, "security_event", None)]
    assert [r.__dict__["security_event"] for r in events] == ["revoked_key_used", "auth_failed"]
    revoked = events[0].__dict__
    assert (revoked["key_id"], revoked["owner"], revoked["path"]) == ("abc123", "ann", "/threads/t")
    assert revoked["client"] == "127.0.0.1"


async def test_an_unexpected_failure_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="trellis.auth")
    response = await call(Fake(RuntimeError("db down")), "GET", "/threads/t")
    assert response.status_code == 500
    assert response.json()["code"] == "auth_error"
    assert "db down" not in response.text


@pytest.mark.parametrize("kind", ["api_key", "jwt"])
@pytest.mark.parametrize(
    ("permissions", "method", "path", "status"),
    [
        (("read",), "GET", "/threads/t", 200),
        (("read",), "POST", "/threads/search", 200),
        (("read",), "POST", "/threads", 403),
        (("read",), "POST", "/runs/wait", 403),
        (("read",), "DELETE", "/threads/t", 403),
        (("write",), "GET", "/threads/t", 403),
        ((), "GET", "/threads/t", 403),
        (("read", "write"), "DELETE", "/threads/t", 200),
        (("*",), "POST", "/threads", 200),
    ],
)
async def test_api_key_and_jwt_scopes(
    kind: IdentityKind, permissions: tuple[str, ...], method: str, path: str, status: int
) -> None:
    identity = Identity("ann", permissions=permissions, kind=kind, key_id="k")
    response = await call(Fake(identity), method, path)
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "forbidden"


async def test_a_jwt_without_the_permissions_claim_and_custom_users_are_not_scoped() -> None:
    unclaimed = Identity("ann", permissions=(), kind="jwt", permissions_claimed=False)
    assert (await call(Fake(unclaimed), "POST", "/threads")).status_code == 200
    custom = Identity("ann", permissions=("read",), kind="custom")
    assert (await call(Fake(custom), "DELETE", "/threads/t")).status_code == 200


class ByKey:
    """Accepts the `x-api-key` "good" as ann, refuses any other; `mode` as given."""

    def __init__(self, mode: AuthMode) -> None:
        self.mode = mode
        self.calls = 0

    async def authenticate(self, scope: Scope) -> Identity:
        self.calls += 1
        if (b"x-api-key", b"good") in scope["headers"]:
            return Identity("ann", permissions=("read", "write"), kind="api_key", key_id="k")
        raise Unauthenticated("invalid or revoked API key")


async def limited(authenticator: ByKey) -> tuple[httpx.AsyncClient, RateLimits]:
    """A client on Authenticate with 3 failures per minute per address, kept in memory."""
    settings = Settings(
        environment="test",
        rate_limit_storage_url="async+memory://",
        rate_limit_auth_failures="3/minute",
    )
    limits = RateLimits(settings)
    await limits.open()
    app = Authenticate(Echo(), authenticator=authenticator, limits=limits)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"), limits


@pytest.mark.parametrize("mode", ["api_key", "jwt"])
async def test_failures_are_limited_but_valid_credentials_still_pass(mode: AuthMode) -> None:
    authenticator = ByKey(mode)
    http, limits = await limited(authenticator)
    async with http:
        bad = [
            (await http.get("/threads/t", headers={"x-api-key": "bad"})).status_code
            for _ in range(5)
        ]
        assert bad == [401, 401, 401, 429, 429]
        refused = await http.get("/threads/t", headers={"x-api-key": "bad"})
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        good = await http.get("/threads/t", headers={"x-api-key": "good"})
        assert (good.status_code, good.text) == (200, "ann")
    await limits.close()


async def test_custom_mode_refuses_an_address_over_its_limit_before_checking() -> None:
    authenticator = ByKey("custom")
    http, limits = await limited(authenticator)
    async with http:
        for _ in range(3):
            assert (await http.get("/threads/t", headers={"x-api-key": "bad"})).status_code == 401
        good = await http.get("/threads/t", headers={"x-api-key": "good"})
        assert good.status_code == 429
        assert authenticator.calls == 3  # a handler's credentials may be guessable
    await limits.close()
