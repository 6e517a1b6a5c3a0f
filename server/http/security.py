"""Security wiring of the HTTP app: authentication, authorization and limits.

`install(app, settings, limits)` adds, from the outside in (CORS, `LocalOnly` in `none`
mode and the security headers wrap these in `create_app`, whose lifespan opens and closes
`limits`; a proxy's `X-Forwarded-For` counts only from `FORWARDED_ALLOW_IPS`):

    Authenticate → RateLimit → BodyGuard → CustomAuthorize (custom mode) → RequestTimeout → routes

The custom routes of `http.app` (`server.http.custom_app`) are served just inside
`Authenticate` with `http.enable_custom_route_auth`, outside it otherwise; the route groups
`http.disable_*` removes answer 404 just before the routes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from server.auth.authenticators import ApiKeyAuth, Authenticator, CustomAuthn, JwtAuth, NoAuth
from server.auth.custom import CustomAuth, load_custom_auth
from server.auth.jwt_bearer import JwtVerifier
from server.core.settings import Settings
from server.http.middleware.authenticate import Authenticate
from server.http.middleware.authorize import CustomAuthorize, ThreadAuthorizer
from server.http.middleware.limits import BodyGuard, RateLimit, RateLimits, RequestTimeout
from server.services import Services

log = logging.getLogger("trellis.security")


def build_authenticator(
    settings: Settings, custom: CustomAuth | None, engine: Callable[[], AsyncEngine]
) -> Authenticator:
    """The authenticator `AUTH_MODE` selects."""
    if settings.auth_mode == "api_key":
        return ApiKeyAuth(engine)
    if settings.auth_mode == "jwt":
        return JwtAuth(JwtVerifier(settings))
    if settings.auth_mode == "custom":
        assert custom is not None
        return CustomAuthn(custom)
    return NoAuth()


def install(
    app: FastAPI,
    settings: Settings,
    limits: RateLimits,
    *,
    before_authenticate: Callable[[], None] | None = None,
) -> None:
    """Add the security middlewares to `app`; they limit with `limits`. `before_authenticate`
    adds what must run just inside `Authenticate` (authenticated custom routes)."""
    custom = load_custom_auth(settings.graphs_config) if settings.auth_mode == "custom" else None
    if custom is not None and not custom.has_authenticate:
        log.warning("custom auth has no @auth.authenticate handler; every caller is anonymous")
    app.state.rate_limits = limits

    def engine() -> AsyncEngine:
        """The engine the lifespan opened (after this wiring)."""
        services: Services = app.state.services
        return services.engine

    # Added innermost first: Starlette wraps each new middleware around the previous ones.
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_seconds)
    app.state.thread_authorizer = None  # the thread websocket runs the handlers itself
    if custom is not None:
        app.add_middleware(CustomAuthorize, custom=custom, engine=engine)
        if custom.has_handlers:
            app.state.thread_authorizer = ThreadAuthorizer(custom, engine)
    app.add_middleware(BodyGuard, settings=settings)
    app.add_middleware(RateLimit, limits=limits)
    authenticator = build_authenticator(settings, custom, engine)
    app.state.authenticator = authenticator  # websockets authenticate in their route
    if before_authenticate is not None:
        before_authenticate()
    app.add_middleware(
        Authenticate,
        authenticator=authenticator,
        limits=limits,
        metrics_addresses=settings.metrics_public_addresses,
    )
