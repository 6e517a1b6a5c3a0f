"""HTTP routes of the LangGraph Server API, one module per resource.

assistants.py  /assistants
threads.py     /threads, their state and history
runs.py        /threads/{id}/runs and stateless /runs, streamed, waited on, cancelled
thread_streams.py  /threads/{id}/stream, /commands, /stream/events: every run of a thread
store.py       /store: LangGraph's long-term memory, scoped to the caller
approvals.py   /approvals: interrupts as human decisions
documents.py   /documents: ingestion for the built-in assistant
meta.py        /ok, /info and the other server-level routes

Every router's `route_class` is `CheckedRoute`: a route reads the body `BodyGuard` parsed
and checked, never a second parse of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine

from fastapi import Request, Response
from fastapi.routing import APIRoute

from server.core.encoding import UnsafeJson, parse_json
from server.core.types import JsonValue
from server.http.asgi import JSON_STATE, ROUTE_STATE

AS_RETURNED = object
"""`response_model` of the routes whose annotation is a TypedDict (or a list of them): left
to itself, FastAPI would build a model from the annotation and validate every answer against
it (refusing the partial objects a `select` asks for). With `object`, as with the untyped
annotations these routes had, pydantic's core serialises the value as it is. (`None` would
switch to FastAPI's slower `jsonable_encoder`.)"""


class CheckedRequest(Request):
    """A request whose JSON is the value `BodyGuard` parsed and checked (with any change an
    auth handler made to it), so the route validates exactly what the guard let through."""

    async def json(self) -> JsonValue:
        """The guard's parsed body; parsed here, by the same policy, only if it did not run."""
        state = self.scope.get("state") or {}
        if JSON_STATE in state:
            value: JsonValue = state[JSON_STATE]
            return value
        body = await self.body()
        try:
            return parse_json(body)
        except UnsafeJson as exc:  # FastAPI answers this one as a 422
            raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None


class CheckedRoute(APIRoute):
    """An `APIRoute` that hands its endpoint a `CheckedRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[None, None, Response]]:
        handler = super().get_route_handler()
        template = self.path_format

        async def checked(request: Request) -> Response:
            request.scope.setdefault("state", {})[ROUTE_STATE] = template  # for metrics
            return await handler(CheckedRequest(request.scope, request.receive))

        return checked
