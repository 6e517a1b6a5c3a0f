"""Authenticators without a server: header parsing and the refusals that need no database."""

from __future__ import annotations

import pytest
from langgraph_sdk import Auth
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Scope

from server.auth.authenticators import (
    REALM,
    ApiKeyAuth,
    CustomAuthn,
    JwtAuth,
    NoAuth,
    Unauthenticated,
    bearer_token,
    request_header,
)
from server.auth.custom import CustomAuth
from server.auth.identity import ANONYMOUS_IDENTITY, Identity
from server.auth.jwt_bearer import MAX_TOKEN_BYTES, JwtVerifier, TokenRejected
from server.core.settings import Settings


def scope(*headers: tuple[bytes, bytes]) -> Scope:
    return {"type": "http", "method": "GET", "path": "/threads", "headers": list(headers)}


def test_request_header_finds_the_first_value() -> None:
    s = scope((b"x-api-key", b"one"), (b"x-api-key", b"two"), (b"accept", b"*/*"))
    assert request_header(s, b"x-api-key") == "one"
    assert request_header(s, b"authorization") is None
    assert request_header({"type": "http"}, b"x-api-key") is None


def test_request_header_decodes_latin1() -> None:
    assert request_header(scope((b"x-name", "café".encode("latin-1"))), b"x-name") == "café"


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (b"Bearer abc.def", "abc.def"),
        (b"bearer   abc  ", "abc"),
        (b"BEARER abc", "abc"),
        (b"Bearer ", None),
        (b"Bearer", None),
        (b"Basic dXNlcjpwYXNz", None),
        (b"abc", None),
    ],
)
def test_bearer_token(value: bytes, token: str | None) -> None:
    assert bearer_token(scope((b"authorization", value))) == token


def test_no_bearer_without_an_authorization_header() -> None:
    assert bearer_token(scope((b"x-api-key", b"k"))) is None


async def test_no_auth_is_anonymous() -> None:
    assert await NoAuth().authenticate(scope()) is ANONYMOUS_IDENTITY


def no_engine() -> AsyncEngine:
    raise AssertionError("a request without a key must not reach the database")


async def test_api_key_auth_refuses_a_missing_key_without_the_database() -> None:
    with pytest.raises(Unauthenticated, match="missing API key") as refused:
        await ApiKeyAuth(no_engine).authenticate(scope((b"authorization", b"Basic x")))
    assert refused.value.status == 401
    assert refused.value.headers is None


class FakeVerifier(JwtVerifier):
    """Accepts the token `good`, rejects every other."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def verify(self, token: str) -> Identity:
        self.seen.append(token)
        if token != "good":
            raise TokenRejected("token expired")
        return Identity("jo", kind="jwt")


async def test_jwt_auth_passes_the_bearer_token_to_the_verifier() -> None:
    verifier = FakeVerifier()
    identity = await JwtAuth(verifier).authenticate(scope((b"authorization", b"Bearer good")))
    assert (identity.identity, identity.kind, verifier.seen) == ("jo", "jwt", ["good"])


async def test_jwt_auth_refusals() -> None:
    verifier = FakeVerifier()
    with pytest.raises(Unauthenticated, match="missing bearer token"):
        await JwtAuth(verifier).authenticate(scope((b"x-api-key", b"good")))
    assert verifier.seen == []
    with pytest.raises(Unauthenticated, match="token expired") as refused:
        await JwtAuth(verifier).authenticate(scope((b"authorization", b"Bearer old")))
    assert refused.value.headers == {"WWW-Authenticate": f'{REALM}, error="invalid_token"'}


async def test_oversized_credentials_are_refused_unread() -> None:
    huge = b"k" * (MAX_TOKEN_BYTES + 1)
    for header in (b"x-api-key", b"authorization"):
        value = huge if header == b"x-api-key" else b"Bearer " + huge
        with pytest.raises(Unauthenticated, match="longer than 16384 bytes") as refused:
            await ApiKeyAuth(no_engine).authenticate(scope((header, value)))
        assert refused.value.status == 401
    verifier = FakeVerifier()
    with pytest.raises(Unauthenticated, match="longer than 16384 bytes"):
        await JwtAuth(verifier).authenticate(scope((b"authorization", b"Bearer " + huge)))
    assert verifier.seen == []
    settings = Settings(auth_mode="jwt", jwt_jwks_url="http://127.0.0.1:1/jwks.json")
    with pytest.raises(TokenRejected, match="longer than 16384 bytes"):
        await JwtVerifier(settings).verify(huge.decode())  # before a key is looked up
    at_bound = "Bearer " + "k" * MAX_TOKEN_BYTES
    with pytest.raises(Unauthenticated, match="token expired"):  # verified: not too long
        await JwtAuth(verifier).authenticate(scope((b"authorization", at_bound.encode())))


async def test_custom_auth_without_an_authenticate_handler_is_anonymous() -> None:
    identity = await CustomAuthn(CustomAuth(Auth(), "test")).authenticate(scope())
    assert (identity.identity, identity.is_authenticated, identity.kind) == (
        ANONYMOUS_IDENTITY.identity,
        False,
        "custom",
    )


async def test_custom_auth_turns_its_http_exception_into_a_refusal() -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate(authorization: str | None) -> str:
        if authorization != "Bearer letmein":
            raise Auth.exceptions.HTTPException(
                status_code=403, detail="nope", headers={"X-Why": "because"}
            )
        return "kim"

    authn = CustomAuthn(CustomAuth(auth, "test"))
    identity = await authn.authenticate(scope((b"authorization", b"Bearer letmein")))
    assert (identity.identity, identity.kind) == ("kim", "custom")
    with pytest.raises(Unauthenticated) as refused:
        await authn.authenticate(scope())
    assert (refused.value.status, refused.value.reason) == (403, "nope")
    assert refused.value.headers == {"X-Why": "because"}
