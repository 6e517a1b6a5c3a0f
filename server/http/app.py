"""The app factory: the same wiring for `trellis serve` and for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server.core.logging import report_fatal
from server.core.settings import Settings
from server.http import docs, error_handlers, security
from server.http.middleware.headers import SecurityHeaders
from server.http.middleware.limits import RateLimits
from server.http.middleware.local_only import LocalOnly
from server.http.middleware.request_context import RequestContext
from server.http.responses import JSONResponse
from server.http.routes import (
    approvals,
    assistants,
    documents,
    meta,
    runs,
    store,
    thread_streams,
    threads,
)
from server.http.routes.meta import VERSION
from server.services import open_services


def create_app(settings: Settings, *, worker: bool = True) -> FastAPI:
    """A Trellis app; `worker=False` serves the API without executing runs."""
    limits = RateLimits(settings)
    app = FastAPI(
        title="Trellis",
        version=VERSION,
        description="Self-hosted LangGraph orchestration, speaking the LangGraph Server API.",
        lifespan=lifespan(settings, limits, worker=worker),
        default_response_class=JSONResponse,
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: `docs` serves local ones
        redoc_url=None,
    )
    error_handlers.install(app)
    # Routes are matched in order, one pattern at a time: the ones every run uses go first.
    app.include_router(runs.thread_runs)
    app.include_router(threads.router)
    app.include_router(thread_streams.router)
    app.include_router(runs.stateless_runs)
    app.include_router(assistants.router)
    app.include_router(meta.router)
    app.include_router(documents.router)
    app.include_router(approvals.router)
    app.include_router(store.router)
    docs.install(app)
    security.install(app, settings, limits)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        allow_private_network=True,
        expose_headers=[
            "content-location",
            "location",
            "x-pagination-next",
            "x-pagination-total",
            "x-request-id",
        ],
    )
    if settings.auth_mode == "none":
        app.add_middleware(
            LocalOnly,
            bind_host=settings.host,
            allowed_hosts=settings.allowed_hosts,
            cors_origins=settings.cors_origins,
        )
    app.add_middleware(SecurityHeaders, hsts_seconds=settings.hsts_seconds)
    app.add_middleware(RequestContext, measure=settings.metrics_enabled)
    if settings.forwarded_allow_ips:
        # Here rather than in uvicorn (started with `proxy_headers=False` everywhere, whose
        # default trusts 127.0.0.1): the same trust for `trellis serve` and for tests.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app


def lifespan(
    settings: Settings, limits: RateLimits, *, worker: bool = True
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The FastAPI lifespan: the rate-limit storage, then the services on `app.state.services`
    (closed in reverse)."""

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                await limits.open()
                stack.push_async_callback(limits.close)
                services = await stack.enter_async_context(open_services(settings, worker=worker))
            except Exception as error:
                report_fatal("could not start", error)
                raise
            app.state.services = services
            yield

    return _lifespan
