"""Security wiring of the HTTP app: authentication, authorization, limits and their lifecycle.

`install(app, settings)` adds, from the outside in (CORS and the security
headers wrap these in `create_app`):

    Authenticate → RateLimit → BodyGuard → CustomAuthorize (custom mode) → RequestTimeout → routes

and maps `NotFound` (logging ids that exist under another owner as a
`cross_owner_access` security event) and `CheckpointRejected` to JSON errors.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import text

from server.audit import security_event
from server.auth.custom import CustomAuth, load_custom_auth
from server.auth.jwt_bearer import JwtVerifier
from server.auth.middleware import (
    ApiKeyAuth,
    Authenticate,
    Authenticator,
    CustomAuthn,
    CustomAuthorize,
    JwtAuth,
    NoAuth,
)
from server.checkpoint_serde import CheckpointRejected
from server.errors import NotFound, error_body
from server.limits import BodyGuard, RateLimit, RateLimits, RequestTimeout
from server.responses import JSONResponse
from server.settings import Settings

log = logging.getLogger("trellis.security")

_LOOKUPS = {
    "thread_id": ("thread", "SELECT owner FROM threads WHERE thread_id = :id"),
    "run_id": ("run", "SELECT owner FROM runs WHERE run_id = :id"),
    "assistant_id": ("assistant", "SELECT owner FROM assistants WHERE assistant_id = :id"),
}


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

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        await _note_cross_owner(request)
        return JSONResponse(error_body(exc.detail, exc.code), status_code=exc.status)

    @app.exception_handler(CheckpointRejected)
    async def _rejected(request: Request, exc: CheckpointRejected) -> JSONResponse:
        log.error("checkpoint rejected", extra={"path": request.url.path, "error": str(exc)})
        return JSONResponse(
            error_body(
                "this thread's checkpoint contains data Trellis refuses to load",
                "checkpoint_rejected",
            ),
            status_code=500,
        )


async def _note_cross_owner(request: Request) -> None:
    """Log a 404 whose id exists under another owner (someone probing other tenants' ids)."""
    owner = getattr(request.state, "owner", None)
    if owner is None:
        return
    try:
        engine = request.app.state.services.engine
        async with engine.connect() as conn:
            for param, (kind, sql) in _LOOKUPS.items():
                raw = request.path_params.get(param)
                if not isinstance(raw, str):
                    continue
                try:
                    ident = uuid.UUID(raw)
                except ValueError:
                    continue
                found = (await conn.execute(text(sql), {"id": ident})).first()
                if found is not None and found[0] is not None and found[0] != owner:
                    security_event(
                        "cross_owner_access",
                        owner=owner,
                        resource=kind,
                        resource_id=str(ident),
                        path=request.url.path,
                        method=request.method,
                    )
                    return
    except Exception:  # a log line must never turn a 404 into a 500
        log.debug("cross-owner lookup failed", exc_info=True)
