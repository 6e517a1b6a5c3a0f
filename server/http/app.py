"""The app factory: the same wiring for `trellis serve` and for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server.core.logging import report_fatal
from server.core.settings import Settings
from server.graph_host.config_keys import report_config_keys, validate_http
from server.graph_host.registry import GraphConfig, GraphLoadError, read_config
from server.http import cors, custom_app, docs, error_handlers, security
from server.http.custom_app import CustomApp
from server.http.middleware.disabled import DisabledRoutes, disabled_groups
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


def _read_config(settings: Settings) -> GraphConfig | None:
    """The `langgraph.json`, with a line for each key that needs one; None when it cannot be
    read (the lifespan reports why when it loads the graphs)."""
    try:
        config = read_config(settings.graphs_config)
    except GraphLoadError:
        return None
    report_config_keys(config.raw, str(config.path))
    validate_http(config.raw.get("http"), str(config.path))
    return config


def create_app(settings: Settings, *, worker: bool = True) -> FastAPI:
    """A Trellis app; `worker=False` serves the API without executing runs.

    The `http` section of `langgraph.json` adds the custom app (`http.app`), its CORS rules
    and the route groups it disables; values it cannot apply (a custom app that cannot load,
    CORS values of the wrong type) raise `ConfigKeyError`.
    """
    limits = RateLimits(settings)
    config = _read_config(settings)
    http: Mapping[str, object] = {}
    if config is not None and isinstance(config.raw.get("http"), Mapping):
        http = config.raw["http"]
    custom = custom_app.load_custom_app(config, http) if config is not None else None
    app = FastAPI(
        title="Trellis",
        version=VERSION,
        description="Self-hosted LangGraph orchestration, speaking the LangGraph Server API.",
        lifespan=lifespan(settings, limits, worker=worker, custom=custom),
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
    flags = disabled_groups(http)
    if flags:
        app.add_middleware(DisabledRoutes, flags=flags)  # innermost: after authentication
    security.install(
        app,
        settings,
        limits,
        before_authenticate=lambda: custom_app.install_authenticated(app, custom),
    )
    custom_app.install_outer(app, custom)
    cors.install(app, settings, http.get("cors"))
    custom_app.install_middleware(app, custom)  # outside CORS, as the official server's
    custom_app.install_openapi(app, custom)
    if settings.auth_mode == "none":
        app.add_middleware(
            LocalOnly,
            bind_host=settings.host,
            allowed_hosts=settings.allowed_hosts,
            cors_origins=cors.allowed_origins(settings, http.get("cors")),
        )
    app.add_middleware(SecurityHeaders, hsts_seconds=settings.hsts_seconds)
    app.add_middleware(RequestContext, measure=settings.metrics_enabled)
    if settings.forwarded_allow_ips:
        # Here rather than in uvicorn (started with `proxy_headers=False` everywhere, whose
        # default trusts 127.0.0.1): the same trust for `trellis serve` and for tests.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app


def lifespan(
    settings: Settings, limits: RateLimits, *, worker: bool = True, custom: CustomApp | None = None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The FastAPI lifespan: the rate-limit storage, then the services on `app.state.services`,
    then the custom app's own lifespan (closed in reverse)."""

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
            if custom is not None:
                try:
                    await stack.enter_async_context(custom.app.router.lifespan_context(custom.app))
                except Exception as error:
                    report_fatal(f"http.app {custom.spec}: its lifespan failed", error)
                    raise
            yield

    return _lifespan
