"""Server routes: health and capabilities."""

from __future__ import annotations

from importlib.metadata import version
from urllib.parse import urlsplit

from fastapi import APIRouter, Response

from server.core import metrics
from server.db import run_rows
from server.db.engine import ping
from server.http.deps import ServicesDep
from server.http.routes import CheckedRoute

router = APIRouter(tags=["meta"], route_class=CheckedRoute)

VERSION = version("trellis")


@router.get("/ok")
async def ok(services: ServicesDep, check_db: bool = False) -> dict[str, bool]:
    """Liveness; with `check_db=1`, also a database round trip."""
    if check_db:
        await ping(services.engine)
    return {"ok": True}


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(services: ServicesDep) -> Response:
    """This process' metrics in Prometheus' text format, with the run queue read now."""
    async with services.engine.connect() as conn:
        queue = await run_rows.queue_stats(conn)
    return Response(metrics.render(queue), media_type=metrics.CONTENT_TYPE_LATEST)


@router.get("/info")
async def info(services: ServicesDep) -> dict[str, object]:
    """Version and feature flags with the official server's keys, plus what this Trellis is
    configured with (never a secret): graphs, worker, model, OCR, Redis, LangSmith."""
    settings = services.settings
    tracing = settings.langsmith_tracing_on
    return {
        "version": VERSION,
        "langgraph_py_version": version("langgraph"),
        "flags": {
            "assistants": True,
            "crons": False,
            "langsmith": tracing,
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
            "langsmith": {
                "tracing": tracing,
                "tracing_setting": settings.langsmith_tracing,
                "api_key": settings.langsmith_api_key is not None,
                "endpoint_host": urlsplit(settings.langsmith_endpoint).netloc.rpartition("@")[2],
            },
            **services.extra_info,
        },
    }
