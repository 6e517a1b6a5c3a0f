"""JWT mode: issuer, audience, expiry, algorithm and key checks, and key rotation."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.security import security_settings, serve_app, trellis

ISSUER = "https://issuer.test"
AUDIENCE = "trellis-api"


class Provider:
    """An identity provider: signing keys and a JWKS document it serves."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        self.fetches = 0

    def new_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            out.append(jwk | {"kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": out}

    def token(self, kid: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": "carol", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now}
        body |= claims
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@asynccontextmanager
async def jwt_trellis(security_db: str, **overrides: Any) -> AsyncIterator[tuple[Provider, str]]:
    """An identity provider with key `k1`, and a Trellis in JWT mode trusting it."""
    provider = Provider()
    provider.new_key("k1")

    async def jwks(_: Request) -> JSONResponse:
        provider.fetches += 1
        return JSONResponse(provider.jwks())

    async with serve_app(Starlette(routes=[Route("/jwks.json", jwks)])) as idp:
        settings = security_settings(
            security_db,
            auth_mode="jwt",
            jwt_jwks_url=f"{idp}/jwks.json",
            jwt_issuer=ISSUER,
            jwt_audience=[AUDIENCE],
            jwks_min_refetch_seconds=1.0,
            jwt_leeway_seconds=0,
            **overrides,
        )
        async with trellis(settings) as url:
            yield provider, url


@pytest.fixture(scope="module")
async def provider_and_url(security_db: str) -> AsyncIterator[tuple[Provider, str]]:
    async with jwt_trellis(security_db) as provider_and_url:
        yield provider_and_url


async def status(url: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.post(
            "/threads/search", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_jwt_checks(provider_and_url: tuple[Provider, str]) -> None:
    provider, url = provider_and_url
    assert await status(url, provider.token("k1")) == 200
    assert await status(url, provider.token("k1", iss="https://evil.test")) == 401
    assert await status(url, provider.token("k1", aud="someone-else")) == 401
    assert await status(url, provider.token("k1", exp=int(time.time()) - 5)) == 401
    unsigned = _b64({"alg": "none", "kid": "k1"}) + "." + _b64({"sub": "x", "exp": 2**40}) + "."
    assert await status(url, unsigned) == 401
    hmac_token = jwt.encode(
        {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": 2**40},
        "secret-but-long-enough-for-hmac-256-keys",
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    assert await status(url, hmac_token) == 401
    provider.keys["ghost"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await status(url, provider.token("ghost")) == 401
    assert await status(url, "not-a-jwt") == 401
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        missing = await http.post("/threads/search", json={})
        assert missing.status_code == 401
        assert missing.json()["code"] == "unauthorized"
        assert "Bearer" in missing.headers["www-authenticate"]


async def test_key_rotation(provider_and_url: tuple[Provider, str]) -> None:
    provider, url = provider_and_url
    old = provider.token("k1")
    assert await status(url, old) == 200
    provider.new_key("k2")
    provider.published = ["k2"]  # the provider rotates: k1 is withdrawn
    await asyncio.sleep(1.05)  # past the refetch floor
    assert await status(url, provider.token("k2")) == 200  # unknown kid → one refetch
    assert await status(url, old) == 401  # k1 is gone from the refreshed set
    before = provider.fetches
    ghost = provider.token("ghost")
    # A flood of unknown kids cannot hammer the provider: at most one refetch per second.
    results = await asyncio.gather(*(status(url, ghost) for _ in range(8)))
    assert set(results) == {401}
    assert provider.fetches - before <= 1


async def test_a_validly_signed_token_over_16_kib_is_refused_unverified(
    provider_and_url: tuple[Provider, str],
) -> None:
    provider, url = provider_and_url
    provider.new_key("sizes")  # other tests rotate k1 away
    await asyncio.sleep(1.1)  # past the minimum refetch interval: the new kid is fetched
    assert await status(url, provider.token("sizes", padding="p" * 8_000)) == 200
    huge = provider.token("sizes", padding="p" * 20_000)
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        refused = await http.post(
            "/threads/search", json={}, headers={"Authorization": f"Bearer {huge}"}
        )
    assert refused.status_code == 401
    assert refused.json()["detail"] == "credential longer than 16384 bytes"


async def test_a_valid_token_passes_an_address_locked_out_by_bad_ones(security_db: str) -> None:
    async with jwt_trellis(security_db, rate_limit_auth_failures="30/minute") as (provider, url):
        bad = [await status(url, "not-a-jwt") for _ in range(31)]
        assert bad == [401] * 30 + [429]
        assert await status(url, provider.token("k1")) == 200
        assert await status(url, provider.token("k1", iss="https://evil.test")) == 429


async def test_the_permissions_claim_binds_reads_and_writes(
    provider_and_url: tuple[Provider, str],
) -> None:
    provider, url = provider_and_url
    kid = provider.published[-1]  # test_key_rotation may have rotated k1 out

    def bearer(**claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {provider.token(kid, **claims)}"}

    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        writer = bearer(permissions=["read", "write"])
        thread = (await http.post("/threads", json={}, headers=writer)).json()["thread_id"]
        reader = bearer(permissions=["read"])
        assert (await http.get(f"/threads/{thread}", headers=reader)).status_code == 200
        assert (await http.post("/threads/search", json={}, headers=reader)).status_code == 200
        refused = await http.post("/threads", json={}, headers=reader)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
        assert (await http.delete(f"/threads/{thread}", headers=reader)).status_code == 403
        assert (await http.get(f"/threads/{thread}", headers=writer)).status_code == 200
        # A space-separated claim like OAuth's `scope`; an empty one grants nothing.
        spaced = bearer(permissions="read write")
        assert (await http.post("/threads", json={}, headers=spaced)).status_code == 200
        nothing = bearer(permissions=[])
        assert (await http.get(f"/threads/{thread}", headers=nothing)).status_code == 403
        # No claim at all: nothing says what the token may do, so it is not bound.
        assert (await http.delete(f"/threads/{thread}", headers=bearer())).status_code == 204
