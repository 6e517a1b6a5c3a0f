"""Assistants: versioned configurations of a served graph."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from server.core.schemas import (
    AssistantCount,
    AssistantCreate,
    AssistantPatch,
    AssistantSearch,
    AssistantSetLatest,
    AssistantVersions,
)
from server.core.types import Assistant, AssistantVersion, GraphSchema, JsonObject, Subgraphs
from server.http.deps import AssistantsDep, OwnerDep
from server.http.routes import AS_RETURNED, CheckedRoute

MAX_XRAY = 32
"""Subgraph levels a drawing expands (`xray`); deeper asks are refused, not attempted."""

router = APIRouter(prefix="/assistants", tags=["assistants"], route_class=CheckedRoute)


@router.post("", response_model=AS_RETURNED)
async def create_assistant(
    body: AssistantCreate, assistants: AssistantsDep, owner: OwnerDep
) -> Assistant:
    """Create an assistant for a served graph."""
    return await assistants.create(owner, body)


@router.post("/search", response_model=AS_RETURNED)
async def search_assistants(
    body: AssistantSearch, assistants: AssistantsDep, owner: OwnerDep, response: Response
) -> list[Assistant]:
    """Assistants matching metadata, graph id or name."""
    found = await assistants.search(owner, body)
    if len(found) == body.limit:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return found


@router.post("/count")
async def count_assistants(body: AssistantCount, assistants: AssistantsDep, owner: OwnerDep) -> int:
    """How many assistants match."""
    return await assistants.count(owner, body)


@router.get("/{assistant_id}", response_model=AS_RETURNED)
async def get_assistant(assistant_id: str, assistants: AssistantsDep, owner: OwnerDep) -> Assistant:
    """One assistant."""
    return await assistants.get(owner, assistant_id)


@router.patch("/{assistant_id}", response_model=AS_RETURNED)
async def patch_assistant(
    assistant_id: str, body: AssistantPatch, assistants: AssistantsDep, owner: OwnerDep
) -> Assistant:
    """Change an assistant; every change is a new version."""
    return await assistants.patch(owner, assistant_id, body)


@router.delete("/{assistant_id}", status_code=204)
async def delete_assistant(
    assistant_id: str,
    assistants: AssistantsDep,
    owner: OwnerDep,
    delete_threads: bool = False,
) -> Response:
    """Delete a user-created assistant, its versions and its runs; `delete_threads=true`
    also deletes the caller's threads whose metadata names the assistant."""
    await assistants.delete(owner, assistant_id, delete_threads=delete_threads)
    return Response(status_code=204)


@router.post("/{assistant_id}/versions", response_model=AS_RETURNED)
async def list_versions(
    assistant_id: str, body: AssistantVersions, assistants: AssistantsDep, owner: OwnerDep
) -> list[AssistantVersion]:
    """The assistant's versions, newest first."""
    return await assistants.versions(owner, assistant_id, body)


@router.post("/{assistant_id}/latest", response_model=AS_RETURNED)
async def set_latest_version(
    assistant_id: str, body: AssistantSetLatest, assistants: AssistantsDep, owner: OwnerDep
) -> Assistant:
    """Make an earlier version current."""
    return await assistants.set_latest(owner, assistant_id, body.version)


@router.get("/{assistant_id}/graph", response_model=AS_RETURNED)
async def get_graph(
    assistant_id: str,
    assistants: AssistantsDep,
    owner: OwnerDep,
    xray: Annotated[int, Field(ge=0, le=MAX_XRAY)] | bool = Query(default=False),
) -> JsonObject:
    """The graph's nodes and edges, as LangGraph draws it."""
    return await assistants.drawing(owner, assistant_id, xray=xray)


@router.get("/{assistant_id}/schemas", response_model=AS_RETURNED)
async def get_schemas(assistant_id: str, assistants: AssistantsDep, owner: OwnerDep) -> GraphSchema:
    """JSON Schemas of the graph's input, output, state, config and context."""
    return await assistants.schemas(owner, assistant_id)


@router.get("/{assistant_id}/subgraphs", response_model=AS_RETURNED)
@router.get("/{assistant_id}/subgraphs/{namespace}", response_model=AS_RETURNED)
async def get_subgraphs(
    assistant_id: str,
    assistants: AssistantsDep,
    owner: OwnerDep,
    namespace: str | None = None,
    recurse: bool = False,
) -> Subgraphs:
    """Schemas of the graph's subgraphs, keyed by namespace."""
    return await assistants.subgraphs(owner, assistant_id, namespace=namespace, recurse=recurse)
