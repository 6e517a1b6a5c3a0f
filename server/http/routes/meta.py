"""Server routes: liveness, readiness, metrics and capabilities."""

from __future__ import annotations

import logging
from importlib.metadata import version
from urllib.parse import urlsplit

from fastapi import APIRouter, Response

from server.core import metrics, tracing
from server.db import run_rows
from server.db.engine import ping
from server.http.deps import ServicesDep
from server.http.responses import JSONResponse
from server.http.routes import CheckedRoute
from server.ops.health import dependencies_up, readiness

log = logging.getLogger("trellis.health")

router = APIRouter(tags=["meta"], route_class=CheckedRoute)

VERSION = version("trellis")


@router.get("/ok")
async def ok(services: ServicesDep, check_db: bool = False) -> dict[str, bool]:
    """Liveness; with `check_db=1`, also a database round trip."""
    if check_db:
        await ping(services.engine)
    return {"ok": True}


@router.get("/ready", response_model=None)
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness: Postgres answers a query, the schema is at head, Redis and Qdrant answer
    when this process uses them, every graph loaded. 503 names what fails.

    Public like `/ok` (probes carry no credentials), so the body says which component fails
    and not why (addresses, errors): that goes to the log, and `trellis doctor` prints it."""
    redis = services.extra_info.get("redis")
    checks = await readiness(
        services.settings,
        services.engine,
        services.registry,
        redis_connected=isinstance(redis, dict) and bool(redis.get("connected")),
    )
    failing = [check.name for check in checks if not check.ok]
    components = {check.name: "ok" if check.ok else "failing" for check in checks}
    if not failing:
        return JSONResponse({"status": "ready", "components": components})
    for check in checks:
        if not check.ok:
            log.warning(
                "not ready: %s: %s",
                check.name,
                check.detail,
                extra={"component": check.name, "fix": check.fix},
            )
    return JSONResponse(
        {
            "detail": f"not ready: {', '.join(failing)} failing",
            "code": "not_ready",
            "status": "unavailable",
            "components": components,
        },
        status_code=503,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(services: ServicesDep) -> Response:
    """This process' metrics in Prometheus' text format, with the run queue read now
    (404 with `METRICS_ENABLED=false`)."""
    if not services.settings.metrics_enabled:
        return JSONResponse({"detail": "metrics are disabled", "code": "not_found"}, 404)
    redis = services.extra_info.get("redis")
    up = await dependencies_up(
        services.settings, redis_connected=isinstance(redis, dict) and bool(redis.get("connected"))
    )
    async with services.engine.connect() as conn:
        queue = await run_rows.queue_stats(conn)
    return Response(metrics.render(queue, up), media_type=metrics.CONTENT_TYPE_LATEST)


@router.get("/info")
async def info(services: ServicesDep) -> dict[str, object]:
    """Version and feature flags with the official server's keys, plus what this Trellis is
    configured with (never a secret): graphs, worker, model, OCR, Redis, LangSmith, metrics
    and OpenTelemetry tracing."""
    settings = services.settings
    langsmith_on = settings.langsmith_tracing_on
    return {
        "version": VERSION,
        "langgraph_py_version": version("langgraph"),
        "flags": {
            "assistants": True,
            "crons": False,
            "langsmith": langsmith_on,
            "langsmith_tracing_replicas": False,
            "langsmith_tracing_session_on_runs": False,
        },
        "host": {
            "kind": "trellis",
            "project_id": None,
            "host_revision_id": None,
            "revision_id": None,
            "tenant_id": None,
        },
        "trellis": {
            "graphs": services.registry.graph_ids,
            "worker": services.executor is not None,
            "capabilities": {"ocr": None},  # None: no served graph of Trellis' own reads images
            "observability": {
                "metrics": settings.metrics_enabled,
                "tracing": settings.otel_traces_exporter if tracing.current() else "none",
            },
            "langsmith": {
                "tracing": langsmith_on,
                "tracing_setting": settings.langsmith_tracing,
                "api_key": settings.langsmith_api_key is not None,
                "endpoint_host": urlsplit(settings.langsmith_endpoint).netloc.rpartition("@")[2],
            },
            **services.extra_info,
        },
    }
