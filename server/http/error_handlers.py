"""The one mapping of errors to HTTP responses: the domain tree of `server.core.errors`,
request validation, Starlette's own HTTP errors, rejected checkpoints, an unreachable
database (503 with `Retry-After`) and anything unexpected, each as a JSON body
`{"detail": ..., "code": ...}`.

A 404 whose id exists under another owner is also logged as a `cross_owner_access`
security event (someone probing other tenants' ids).
"""

from __future__ import annotations

import logging
import uuid

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.core.audit import security_event
from server.core.errors import NotFound, TrellisError, error_body
from server.db import owners
from server.db.checkpoint_serde import CheckpointRejected
from server.db.outages import infrastructure_fault
from server.http.responses import JSONResponse
from server.services import Services

log = logging.getLogger("trellis.errors")

RETRY_AFTER_SECONDS = 1
"""What a 503 for an unreachable database asks clients to wait: the pools reconnect within
half a second of its return."""

_STORE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,  # also psycopg_pool.PoolTimeout
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
)
"""Errors that may mean the database is unreachable (`infrastructure_fault` decides)."""


def install(app: FastAPI) -> None:
    """Map domain, validation and unexpected errors to JSON responses."""

    @app.exception_handler(TrellisError)
    async def _domain(_: Request, exc: TrellisError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(error_body(errors, "validation_error"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(exc.detail, code), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(
            error_body("internal error; see the server log", "internal_error"), status_code=500
        )

    async def _store_error(request: Request, exc: Exception) -> JSONResponse:
        # Handled here (not by the catch-all, which re-raises after answering), so the
        # client's keep-alive connection stays usable for its retry.
        fault = infrastructure_fault(exc)
        if fault is None:
            return await _unexpected(request, exc)
        log.warning("database unavailable", extra={"path": request.url.path, "error": fault})
        return JSONResponse(
            error_body("the database is unavailable; retry shortly", "database_unavailable"),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for error in _STORE_ERRORS:
        app.add_exception_handler(error, _store_error)

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


_PATH_PARAMS: dict[str, owners.Resource] = {
    "thread_id": "thread",
    "run_id": "run",
    "assistant_id": "assistant",
}


async def _note_cross_owner(request: Request) -> None:
    """Log a 404 whose id exists under another owner (someone probing other tenants' ids)."""
    owner = getattr(request.state, "owner", None)
    if owner is None:
        return
    try:
        services: Services = request.app.state.services
        async with services.engine.connect() as conn:
            for param, resource in _PATH_PARAMS.items():
                raw = request.path_params.get(param)
                if not isinstance(raw, str):
                    continue
                try:
                    ident = uuid.UUID(raw)
                except ValueError:
                    continue
                found = await owners.owner_of(conn, resource, ident)
                if found is not None and found != owner:
                    security_event(
                        "cross_owner_access",
                        owner=owner,
                        resource=resource,
                        resource_id=str(ident),
                        path=request.url.path,
                        method=request.method,
                    )
                    return
    except Exception:  # a log line must never turn a 404 into a 500
        log.debug("cross-owner lookup failed", exc_info=True)
