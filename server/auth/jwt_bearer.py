"""JWT bearer tokens verified against an identity provider's JWKS.

The key set is cached for `jwks_cache_seconds`. A token naming a `kid` the cache
does not know triggers one refetch (key rotation), at most once per
`jwks_min_refetch_seconds`, so a flood of made-up `kid`s cannot turn Trellis into
a traffic amplifier against the provider. Only asymmetric algorithms from the
configured list are accepted; `alg: none` and HMAC algorithms never are (an
attacker who knows the public key could otherwise sign with it as an HMAC secret).

The JWKS URL is set by the operator, not by a request, so it is fetched directly
with httpx rather than through the outbound guard for user-chosen URLs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import httpx
import jwt

from server.auth.identity import Identity
from server.core.settings import Settings

log = logging.getLogger("trellis.auth")

MAX_TOKEN_BYTES = 16 * 1024
"""Longer bearer tokens and API keys are refused unread: parsing and verifying a token
costs time and memory in its size, and real ones are a few KiB at most."""


class TokenRejected(Exception):
    """Raise when a bearer token is missing, malformed, or fails verification."""


class JwksUnavailable(Exception):
    """Raise when the key set cannot be fetched and no cached copy exists."""


class JwksCache:
    """The provider's signing keys by `kid`, refreshed on expiry and on an unknown `kid`."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float,
        min_refetch: float,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refetch = min_refetch
        self.timeout = timeout
        self._transport = transport
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for `kid` (or the only key, when the token names none)."""
        if time.monotonic() - self._fetched_at > self.ttl:
            await self._refresh(force=True)
        found = self._lookup(kid)
        if found is None:
            await self._refresh(force=False)
            found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age < self.min_refetch or (force and age <= self.ttl):
                return  # another request refreshed it meanwhile, or we refetched too recently
            try:
                async with httpx.AsyncClient(
                    timeout=self.timeout, transport=self._transport, follow_redirects=False
                ) as client:
                    response = await client.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                keys = _parse_jwks(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                self._fetched_at = time.monotonic() - self.ttl + self.min_refetch
                log.warning("JWKS fetch failed", extra={"url": self.url, "error": str(exc)})
                if not self._keys:
                    raise JwksUnavailable(f"cannot fetch the JWKS: {exc}") from exc
                return
            self._keys = keys
            self._fetched_at = time.monotonic()


def _parse_jwks(document: object) -> dict[str, jwt.PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, jwt.PyJWK] = {}
    for index, raw in enumerate(document["keys"]):
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(raw)
        except jwt.PyJWTError:
            continue  # keys of types or algorithms PyJWT cannot use are skipped
        keys[str(raw.get("kid", f"#{index}"))] = key
    return keys


class JwtVerifier:
    """Turns a bearer token into an `Identity`, or raises `TokenRejected`."""

    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        if not settings.jwt_jwks_url:
            raise ValueError("JWT_JWKS_URL is required for AUTH_MODE=jwt")
        self.settings = settings
        self.algorithms = list(settings.jwt_algorithms)
        self.jwks = jwks or JwksCache(
            settings.jwt_jwks_url,
            ttl=settings.jwks_cache_seconds,
            min_refetch=settings.jwks_min_refetch_seconds,
            timeout=settings.jwks_timeout_seconds,
        )

    async def verify(self, token: str) -> Identity:
        """Verify signature, algorithm, issuer, audience and expiry; map claims to an identity."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected(f"token longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("malformed token") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenRejected(f"algorithm {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed kid")
        try:
            key = await self.jwks.key(kid)
        except JwksUnavailable as exc:
            raise TokenRejected("signing keys are unavailable") from exc
        if key is None:
            raise TokenRejected("unknown signing key")
        settings = self.settings
        required = ["exp"]
        if settings.jwt_issuer:
            required.append("iss")
        if settings.jwt_audience:
            required.append("aud")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=settings.jwt_audience or None,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_seconds,
                options={"require": required, "verify_aud": bool(settings.jwt_audience)},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(_reason(exc)) from exc
        owner = claims.get(settings.jwt_owner_claim)
        if not isinstance(owner, str) or not owner:
            raise TokenRejected(f"claim {settings.jwt_owner_claim!r} is missing")
        name = claims.get(settings.jwt_display_name_claim)
        permissions = claims.get(settings.jwt_permissions_claim)
        return Identity(
            owner,
            permissions=_permissions(permissions),
            display_name=name if isinstance(name, str) else None,
            kind="jwt",
            permissions_claimed=permissions is not None,
        )


def _permissions(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, Sequence):
        return tuple(str(item) for item in value)
    return ()


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim!r}"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    return "invalid token"
