"""AssistantService: assistants, their versions and their graphs, for `/assistants`.

An assistant is a served graph plus a versioned configuration. Each served graph has a
system assistant (owner NULL, id derived from the graph id, visible to everyone, never
changed); callers create their own beside them.

An assistant whose graph is no longer served (removed from `langgraph.json`) is kept, as
the official server keeps it: search and count leave it out, and reading or running it is
`NotFound` naming the missing graph. Its owner may still list its versions, re-point it
(patch, set_latest) or delete it;
`warn_unserved` lists such assistants in the log at startup.

Deleting an assistant deletes its runs with it, as the official server's run rows
reference their assistant `ON DELETE CASCADE`: active ones are cancelled first (as the
official `Assistants.delete` cancels them), and `delete_threads` also deletes the caller's
threads whose metadata names the assistant.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import cast

from langchain_core.runnables import RunnableConfig
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.core.errors import AlreadyExists, InvalidRequest, NotFound
from server.core.ids import parse_uuid
from server.core.schemas import (
    AssistantCount,
    AssistantCreate,
    AssistantPatch,
    AssistantSearch,
    AssistantVersions,
)
from server.core.types import Assistant, AssistantVersion, GraphSchema, JsonObject, Subgraphs
from server.db import assistant_rows, run_rows, thread_rows
from server.graph_host.introspection import draw, schemas, subgraphs
from server.graph_host.registry import AnyGraph, GraphRegistry, system_assistant_id
from server.resources.thread_service import ThreadService
from server.runs.manager import RunManager
from server.runs.run_limits import RunLimits

log = logging.getLogger("trellis")


def unserved_graph(assistant_id: str, graph_id: str, registry: GraphRegistry) -> NotFound:
    """The error for using an assistant whose graph this server does not serve."""
    served = ", ".join(registry.graph_ids) or "none"
    return NotFound(
        f"assistant {assistant_id[:80]!r} uses graph {graph_id!r}, which this server does not "
        f"serve (not in its langgraph.json, which lists: {served})"
    )


async def warn_unserved(engine: AsyncEngine, registry: GraphRegistry) -> None:
    """One log line listing the assistants whose graph is not served (they stay hidden)."""
    async with engine.connect() as conn:
        found = await assistant_rows.unserved(conn, graphs=registry.graph_ids)
    if not found:
        return
    shown = "; ".join(
        f"graph {graph_id!r}: {', '.join(ids[:5])}"
        + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        for graph_id, ids in found.items()
    )
    log.warning(
        "%d assistants use graphs that are not in langgraph.json; they are hidden from search "
        "and 404 on use until their graph is served again, re-pointed or deleted (%s)",
        sum(len(ids) for ids in found.values()),
        shown,
        extra={"event": "unserved_assistants", "graphs": sorted(found)},
    )


class AssistantService:
    """Create, read, search, version and delete assistants; describe their graphs."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        registry: GraphRegistry,
        runs: RunManager,
        threads: ThreadService,
        limits: RunLimits | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.runs = runs
        self.threads = threads
        self.limits = limits or RunLimits()
        """What its config and context may ask of the runs made with it."""

    def _uuid(self, assistant_id: str) -> uuid.UUID:
        """An assistant id, or a served graph id naming its system assistant."""
        parsed = parse_uuid(assistant_id)
        if parsed is None and assistant_id in self.registry:
            parsed = system_assistant_id(assistant_id)
        if parsed is None:
            raise NotFound(f"assistant {assistant_id[:80]!r} not found")
        return parsed

    async def _visible(self, conn: AsyncConnection, owner: str, assistant_id: str) -> Assistant:
        """The assistant if the caller sees it and its graph is served, else `NotFound`."""
        found = await assistant_rows.get(conn, owner=owner, assistant_id=self._uuid(assistant_id))
        if found is None:
            raise NotFound(f"assistant {assistant_id[:80]!r} not found")
        if found["graph_id"] not in self.registry:
            raise unserved_graph(assistant_id, found["graph_id"], self.registry)
        return found

    @contextlib.asynccontextmanager
    async def _graph(self, owner: str, assistant_id: str) -> AsyncIterator[tuple[AnyGraph, str]]:
        """The assistant's graph and graph id, opened to be read (a factory builds it with the
        assistant's config, as the official server's `assistants.read` access does)."""
        async with self.engine.connect() as conn:
            assistant = await self._visible(conn, owner, assistant_id)
        loaded = self.registry.get(assistant["graph_id"])
        if loaded is None:
            raise unserved_graph(assistant_id, assistant["graph_id"], self.registry)
        base = assistant.get("config") or {}
        config = cast(
            RunnableConfig,
            {
                **base,
                "configurable": {
                    **(base.get("configurable") or {}),
                    "assistant_id": assistant["assistant_id"],
                    "graph_id": assistant["graph_id"],
                },
            },
        )
        async with loaded.open("assistants.read", config=config) as graph:
            yield graph, loaded.graph_id

    async def create(self, owner: str, body: AssistantCreate) -> Assistant:
        """An assistant for a served graph; `if_exists: do_nothing` returns the existing one
        the caller sees instead of refusing.

        An id another owner holds answers 409 `already_exists`, exactly as one the caller
        holds with `if_exists: raise`: ids are global, so a taken id is bound to be refused,
        but the answer never says whose it is (see `ThreadService.create`)."""
        if body.graph_id not in self.registry:
            raise NotFound(f"graph {body.graph_id!r} is not served by this server")
        self.limits.check(body.config, body.context)
        assistant_id = uuid.uuid4()
        if body.assistant_id is not None:
            parsed = parse_uuid(body.assistant_id)
            if parsed is None:
                raise InvalidRequest("assistant_id must be a UUID")
            assistant_id = parsed
        async with self.engine.begin() as conn:
            created = await assistant_rows.create(
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
            existing = await assistant_rows.get(conn, owner=owner, assistant_id=assistant_id)
        if body.if_exists == "do_nothing" and existing is not None:
            return existing
        raise AlreadyExists(f"assistant {assistant_id} already exists")

    async def search(self, owner: str, query: AssistantSearch) -> list[Assistant]:
        """Assistants the caller sees matching metadata, graph id or name."""
        async with self.engine.connect() as conn:
            return await assistant_rows.search(
                conn, owner=owner, query=query, graphs=self.registry.graph_ids
            )

    async def count(self, owner: str, query: AssistantCount) -> int:
        """How many assistants the caller sees match."""
        async with self.engine.connect() as conn:
            return await assistant_rows.count(
                conn, owner=owner, query=query, graphs=self.registry.graph_ids
            )

    async def get(self, owner: str, assistant_id: str) -> Assistant:
        """An assistant the caller sees, else `NotFound`."""
        async with self.engine.connect() as conn:
            return await self._visible(conn, owner, assistant_id)

    async def patch(self, owner: str, assistant_id: str, body: AssistantPatch) -> Assistant:
        """Change the caller's assistant; every change is a new version."""
        if body.graph_id is not None and body.graph_id not in self.registry:
            raise NotFound(f"graph {body.graph_id!r} is not served by this server")
        self.limits.check(body.config, body.context)
        aid = self._uuid(assistant_id)
        async with self.engine.begin() as conn:
            if await assistant_rows.is_system(conn, aid):
                raise InvalidRequest(
                    "system assistants come from langgraph.json and cannot be changed"
                )
            updated = await assistant_rows.new_version(
                conn, owner=owner, assistant_id=aid, changes=body.model_dump(exclude_none=True)
            )
        if updated is None:
            raise NotFound(f"assistant {assistant_id[:80]!r} not found")
        return updated

    async def delete(self, owner: str, assistant_id: str, *, delete_threads: bool = False) -> None:
        """Delete the caller's assistant, its versions and its runs (active ones are
        cancelled first); with `delete_threads`, also the caller's threads whose metadata
        names it."""
        aid = self._uuid(assistant_id)
        async with self.engine.connect() as conn:
            if await assistant_rows.is_system(conn, aid):
                raise InvalidRequest(
                    "system assistants come from langgraph.json and cannot be deleted"
                )
            if await assistant_rows.get(conn, owner=owner, assistant_id=aid) is None:
                raise NotFound(f"assistant {assistant_id[:80]!r} not found")
            threads = (
                await thread_rows.ids_for_assistant(conn, owner=owner, assistant_id=aid)
                if delete_threads
                else []
            )
        for thread_id in threads:
            await self.threads.delete(owner, thread_id)
        async with self.engine.connect() as conn:
            active = await run_rows.active_for_assistant(conn, aid)
        for thread_id, run_id in active:
            with contextlib.suppress(NotFound):  # it ended, or its thread went, meanwhile
                await self.runs.cancel(owner, thread_id, run_id, action="interrupt", wait=True)
        async with self.engine.begin() as conn:
            if not await assistant_rows.delete_assistant(conn, owner=owner, assistant_id=aid):
                raise NotFound(f"assistant {assistant_id[:80]!r} not found")
            run_ids = await run_rows.delete_for_assistant(conn, aid)
        await self.runs.events.forget(run_ids)

    async def versions(
        self, owner: str, assistant_id: str, query: AssistantVersions
    ) -> list[AssistantVersion]:
        """The assistant's versions, newest first."""
        async with self.engine.connect() as conn:
            found = await assistant_rows.versions(
                conn,
                owner=owner,
                assistant_id=self._uuid(assistant_id),
                metadata=query.metadata,
                limit=query.limit,
                offset=query.offset,
            )
        if found is None:
            raise NotFound(f"assistant {assistant_id[:80]!r} not found")
        return found

    async def set_latest(self, owner: str, assistant_id: str, version: int) -> Assistant:
        """Make an earlier version of the caller's assistant current."""
        async with self.engine.begin() as conn:
            updated = await assistant_rows.set_latest(
                conn, owner=owner, assistant_id=self._uuid(assistant_id), version=version
            )
        if updated is None:
            raise NotFound(f"assistant {assistant_id[:80]!r} or version {version} not found")
        return updated

    async def drawing(self, owner: str, assistant_id: str, *, xray: int | bool) -> JsonObject:
        """The assistant's graph: nodes and edges, as LangGraph draws it."""
        async with self._graph(owner, assistant_id) as (graph, _):
            return await draw(graph, xray=xray)

    async def schemas(self, owner: str, assistant_id: str) -> GraphSchema:
        """JSON Schemas of the assistant's graph."""
        async with self._graph(owner, assistant_id) as (graph, graph_id):
            return schemas(graph, graph_id)

    async def subgraphs(
        self, owner: str, assistant_id: str, *, namespace: str | None, recurse: bool
    ) -> Subgraphs:
        """Schemas of the assistant's subgraphs, keyed by namespace."""
        async with self._graph(owner, assistant_id) as (graph, _):
            return await subgraphs(graph, namespace=namespace, recurse=recurse)
