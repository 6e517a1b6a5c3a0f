"""Security wiring of the HTTP app: authentication, authorization, limits and their lifecycle.

`install(app, settings)` adds, from the outside in (CORS and the security
headers wrap these in `create_app`):

    Authenticate → RateLimit → BodyGuard → CustomAuthorize (custom mode) → RequestTimeout → routes
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from server.auth.custom import CustomAuth, load_custom_auth
from server.auth.jwt_bearer import JwtVerifier
from server.core.settings import Settings
from server.http.middleware.authenticate import (
    ApiKeyAuth,
    Authenticate,
    Authenticator,
    CustomAuthn,
    CustomAuthorize,
    JwtAuth,
    NoAuth,
)
from server.http.middleware.limits import BodyGuard, RateLimit, RateLimits, RequestTimeout

log = logging.getLogger("trellis.security")


def build_authenticator(settings: Settings, custom: CustomAuth | None) -> Authenticator:
    """The authenticator `AUTH_MODE` selects."""
    if settings.auth_mode == "api_key":
        return ApiKeyAuth()
    if settings.auth_mode == "jwt":
        return JwtAuth(JwtVerifier(settings))
    if settings.auth_mode == "custom":
        assert custom is not None
        return CustomAuthn(custom)
    return NoAuth()


def install(app: FastAPI, settings: Settings, *, rate_limit_prefix: str | None = None) -> None:
    """Add the security middlewares, error mappings and their resources to `app`."""
    custom = load_custom_auth(settings.graphs_config) if settings.auth_mode == "custom" else None
    if custom is not None and not custom.has_authenticate:
        log.warning("custom auth has no @auth.authenticate handler; every caller is anonymous")
    limits = RateLimits(settings, key_prefix=rate_limit_prefix)
    app.state.rate_limits = limits

    # Added innermost first: Starlette wraps each new middleware around the previous ones.
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_seconds)
    if custom is not None:
        app.add_middleware(CustomAuthorize, custom=custom)
    app.add_middleware(BodyGuard, settings=settings)
    app.add_middleware(RateLimit, limits=limits)
    app.add_middleware(
        Authenticate, authenticator=build_authenticator(settings, custom), limits=limits
    )

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        await limits.open()
        try:
            async with inner(app) as state:
                yield state
        finally:
            await limits.close()

    app.router.lifespan_context = lifespan
