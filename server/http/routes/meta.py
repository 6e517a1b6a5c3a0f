"""Server routes: health and capabilities."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter

from server.db.engine import ping
from server.http.deps import ServicesDep

router = APIRouter(tags=["meta"])

VERSION = version("trellis")


@router.get("/ok")
async def ok(services: ServicesDep, check_db: bool = False) -> dict[str, bool]:
    """Liveness; with `check_db=1`, also a database round trip."""
    if check_db:
        await ping(services.engine)
    return {"ok": True}


@router.get("/info")
async def info(services: ServicesDep) -> dict[str, object]:
    """Version and feature flags, as the official server reports them, plus Trellis details."""
    return {
        "version": VERSION,
        "langgraph_py_version": version("langgraph"),
        "flags": {"assistants": True, "crons": False, "langsmith": False, "store": True},
        "host": {"kind": "trellis", "project_id": None, "revision_id": None},
        "trellis": {
            "graphs": services.registry.graph_ids,
            "worker": services.executor is not None,
            **services.extra_info,
        },
    }
