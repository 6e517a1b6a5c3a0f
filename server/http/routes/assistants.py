"""Assistants: versioned configurations of a served graph."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.errors import AlreadyExists, InvalidRequest, NotFound
from server.core.ids import parse_uuid
from server.core.schemas import (
    AssistantCount,
    AssistantCreate,
    AssistantPatch,
    AssistantSearch,
    AssistantSetLatest,
    AssistantVersions,
)
from server.db import assistant_rows as rows
from server.graph_host.introspection import draw, schemas, subgraphs
from server.graph_host.registry import LoadedGraph, system_assistant_id
from server.http.deps import OwnerDep, ServicesDep
from server.services import Services

router = APIRouter(prefix="/assistants", tags=["assistants"])


def _assistant_uuid(services: Services, assistant_id: str) -> uuid.UUID:
    parsed = parse_uuid(assistant_id)
    if parsed is None and assistant_id in services.registry:
        parsed = system_assistant_id(assistant_id)
    if parsed is None:
        raise NotFound(f"assistant {assistant_id[:80]!r} not found")
    return parsed


async def _visible(
    conn: AsyncConnection, services: Services, owner: str, assistant_id: str
) -> dict[str, Any]:
    found = await rows.get(conn, owner=owner, assistant_id=_assistant_uuid(services, assistant_id))
    if found is None:
        raise NotFound(f"assistant {assistant_id[:80]!r} not found")
    return found


async def _graph(services: Services, owner: str, assistant_id: str) -> LoadedGraph:
    async with services.engine.connect() as conn:
        assistant = await _visible(conn, services, owner, assistant_id)
    loaded = services.registry.get(assistant["graph_id"])
    if loaded is None:
        raise NotFound(f"graph {assistant['graph_id']!r} is not served by this server")
    return loaded


@router.post("")
async def create_assistant(body: AssistantCreate, services: ServicesDep, owner: OwnerDep) -> Any:
    """Create an assistant for a served graph."""
    if body.graph_id not in services.registry:
        raise NotFound(f"graph {body.graph_id!r} is not served by this server")
    assistant_id = uuid.uuid4()
    if body.assistant_id is not None:
        parsed = parse_uuid(body.assistant_id)
        if parsed is None:
            raise InvalidRequest("assistant_id must be a UUID")
        assistant_id = parsed
    async with services.engine.begin() as conn:
        created = await rows.create(
            conn,
            owner=owner,
            assistant_id=assistant_id,
            graph_id=body.graph_id,
            config=body.config,
            context=body.context,
            metadata=body.metadata,
            name=body.name or "Untitled",
            description=body.description,
        )
        if created is not None:
            return created
        existing = await rows.get(conn, owner=owner, assistant_id=assistant_id)
    if body.if_exists == "do_nothing" and existing is not None:
        return existing
    raise AlreadyExists(f"assistant {assistant_id} already exists")


@router.post("/search")
async def search_assistants(
    body: AssistantSearch, services: ServicesDep, owner: OwnerDep, response: Response
) -> Any:
    """Assistants matching metadata, graph id or name."""
    async with services.engine.connect() as conn:
        found = await rows.search(conn, owner=owner, query=body)
    if len(found) == body.limit:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return found


@router.post("/count")
async def count_assistants(body: AssistantCount, services: ServicesDep, owner: OwnerDep) -> int:
    """How many assistants match."""
    async with services.engine.connect() as conn:
        return await rows.count(conn, owner=owner, query=body)


@router.get("/{assistant_id}")
async def get_assistant(assistant_id: str, services: ServicesDep, owner: OwnerDep) -> Any:
    """One assistant."""
    async with services.engine.connect() as conn:
        return await _visible(conn, services, owner, assistant_id)


@router.patch("/{assistant_id}")
async def patch_assistant(
    assistant_id: str, body: AssistantPatch, services: ServicesDep, owner: OwnerDep
) -> Any:
    """Change an assistant; every change is a new version."""
    if body.graph_id is not None and body.graph_id not in services.registry:
        raise NotFound(f"graph {body.graph_id!r} is not served by this server")
    aid = _assistant_uuid(services, assistant_id)
    async with services.engine.begin() as conn:
        if await rows.is_system(conn, aid):
            raise InvalidRequest("system assistants come from langgraph.json and cannot be changed")
        updated = await rows.new_version(
            conn, owner=owner, assistant_id=aid, changes=body.model_dump(exclude_none=True)
        )
    if updated is None:
        raise NotFound(f"assistant {assistant_id[:80]!r} not found")
    return updated


@router.delete("/{assistant_id}", status_code=204)
async def delete_assistant(assistant_id: str, services: ServicesDep, owner: OwnerDep) -> Response:
    """Delete a user-created assistant and its versions."""
    aid = _assistant_uuid(services, assistant_id)
    async with services.engine.begin() as conn:
        if await rows.is_system(conn, aid):
            raise InvalidRequest("system assistants come from langgraph.json and cannot be deleted")
        if not await rows.delete_assistant(conn, owner=owner, assistant_id=aid):
            raise NotFound(f"assistant {assistant_id[:80]!r} not found")
    return Response(status_code=204)


@router.post("/{assistant_id}/versions")
async def list_versions(
    assistant_id: str, body: AssistantVersions, services: ServicesDep, owner: OwnerDep
) -> Any:
    """The assistant's versions, newest first."""
    async with services.engine.connect() as conn:
        found = await rows.versions(
            conn,
            owner=owner,
            assistant_id=_assistant_uuid(services, assistant_id),
            metadata=body.metadata,
            limit=body.limit,
            offset=body.offset,
        )
    if found is None:
        raise NotFound(f"assistant {assistant_id[:80]!r} not found")
    return found


@router.post("/{assistant_id}/latest")
async def set_latest_version(
    assistant_id: str, body: AssistantSetLatest, services: ServicesDep, owner: OwnerDep
) -> Any:
    """Make an earlier version current."""
    async with services.engine.begin() as conn:
        updated = await rows.set_latest(
            conn,
            owner=owner,
            assistant_id=_assistant_uuid(services, assistant_id),
            version=body.version,
        )
    if updated is None:
        raise NotFound(f"assistant {assistant_id[:80]!r} or version {body.version} not found")
    return updated


@router.get("/{assistant_id}/graph")
async def get_graph(
    assistant_id: str,
    services: ServicesDep,
    owner: OwnerDep,
    xray: int | bool = Query(default=False),
) -> Any:
    """The graph's nodes and edges, as LangGraph draws it."""
    loaded = await _graph(services, owner, assistant_id)
    return await draw(loaded.graph, xray=xray)


@router.get("/{assistant_id}/schemas")
async def get_schemas(assistant_id: str, services: ServicesDep, owner: OwnerDep) -> Any:
    """JSON Schemas of the graph's input, output, state, config and context."""
    loaded = await _graph(services, owner, assistant_id)
    return {"graph_id": loaded.graph_id, **schemas(loaded.graph)}


@router.get("/{assistant_id}/subgraphs")
@router.get("/{assistant_id}/subgraphs/{namespace}")
async def get_subgraphs(
    assistant_id: str,
    services: ServicesDep,
    owner: OwnerDep,
    namespace: str | None = None,
    recurse: bool = False,
) -> Any:
    """Schemas of the graph's subgraphs, keyed by namespace."""
    loaded = await _graph(services, owner, assistant_id)
    return await subgraphs(loaded.graph, namespace=namespace, recurse=recurse)
