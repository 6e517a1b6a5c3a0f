"""The Store API: LangGraph's long-term memory, scoped to the caller (`server.db.owner_store`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from langgraph.store.base import NOT_PROVIDED, InvalidNamespaceError
from pydantic import AfterValidator, Field

from server.core.errors import InvalidRequest
from server.core.schemas import Body
from server.core.types import Json, JsonObject
from server.db.owner_store import OwnerScopedStore
from server.http.deps import OwnerDep, ServicesDep
from server.http.routes import AS_RETURNED, CheckedRoute

router = APIRouter(prefix="/store", tags=["store"], route_class=CheckedRoute)

MAX_LABELS = 32
MAX_LABEL_CHARS = 256
MAX_KEY_CHARS = 1024
MIN_TTL_MINUTES = 0.001
MAX_TTL_MINUTES = 100 * 365 * 24 * 60
"""An item's `ttl` becomes a Postgres interval: bounded so it neither rounds to nothing nor
overflows the timestamp it is added to."""


def _label(value: str) -> str:
    if not value:
        raise ValueError("namespace labels cannot be empty")
    if "." in value:
        raise ValueError("namespace labels cannot contain '.'")
    if "\x00" in value:
        raise ValueError("namespace labels cannot contain NUL")
    return value


FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
"""What a search `filter` may ask of a field beside plain equality (LangGraph's store's set)."""


def _filter(value: Json | None) -> Json | None:
    for field_name, condition in (value or {}).items():
        if isinstance(condition, dict):
            for operator in condition:
                if operator not in FILTER_OPERATORS:
                    raise ValueError(
                        f"unsupported operator {operator!r} on {field_name!r}; "
                        f"use one of {', '.join(sorted(FILTER_OPERATORS))}"
                    )
    return value


Label = Annotated[str, Field(max_length=MAX_LABEL_CHARS), AfterValidator(_label)]
Namespace = Annotated[list[Label], Field(max_length=MAX_LABELS)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS)]


class PutItem(Body):
    namespace: Annotated[list[Label], Field(min_length=1, max_length=MAX_LABELS)]
    key: Key
    value: Json
    index: Literal[False] | list[Annotated[str, Field(max_length=512)]] | None = None
    """Which fields to embed for semantic search (`false`: none; default: the store's)."""
    ttl: float | None = Field(default=None, ge=MIN_TTL_MINUTES, le=MAX_TTL_MINUTES)
    """Minutes until the item expires (fractions allowed); absent: `store.ttl.default_ttl`."""


class DeleteItem(Body):
    namespace: Annotated[list[Label], Field(min_length=1, max_length=MAX_LABELS)]
    key: Key


class SearchItems(Body):
    namespace_prefix: Namespace = Field(default_factory=list)
    filter: Annotated[Json | None, AfterValidator(_filter)] = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    query: str | None = Field(default=None, max_length=10_000)
    refresh_ttl: bool | None = None


class ListNamespaces(Body):
    prefix: Namespace | None = None
    suffix: Namespace | None = None
    max_depth: int | None = Field(default=None, ge=1, le=MAX_LABELS)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)


def _store(services: ServicesDep, owner: str) -> OwnerScopedStore:
    return OwnerScopedStore(services.store, owner)


def _namespace_param(raw: str) -> tuple[str, ...]:
    labels = tuple(raw.split("."))
    if len(labels) > MAX_LABELS:
        raise InvalidRequest(f"a namespace has at most {MAX_LABELS} labels")
    for label in labels:
        try:
            _label(label)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        if len(label) > MAX_LABEL_CHARS:
            raise InvalidRequest(f"namespace labels are at most {MAX_LABEL_CHARS} characters")
    return labels


@router.put("/items", status_code=204)
async def put_item(body: PutItem, services: ServicesDep, owner: OwnerDep) -> Response:
    """Create or replace an item."""
    try:
        await _store(services, owner).aput(
            tuple(body.namespace),
            body.key,
            body.value,
            index=body.index,
            # No ttl: `store.ttl.default_ttl` of the langgraph.json applies (none: forever).
            ttl=body.ttl if body.ttl is not None else NOT_PROVIDED,
        )
    except InvalidNamespaceError as exc:
        raise InvalidRequest(str(exc)) from exc
    return Response(status_code=204)


@router.get("/items", response_model=AS_RETURNED)
async def get_item(
    services: ServicesDep,
    owner: OwnerDep,
    namespace: str = Query(max_length=MAX_LABELS * (MAX_LABEL_CHARS + 1)),
    key: str = Query(min_length=1, max_length=MAX_KEY_CHARS),
    refresh_ttl: bool | None = None,
) -> JsonObject | None:
    """One item `{namespace, key, value, created_at, updated_at}`, or `null`."""
    item = await _store(services, owner).aget(
        _namespace_param(namespace), key, refresh_ttl=refresh_ttl
    )
    return item.dict() if item is not None else None


@router.delete("/items", status_code=204)
async def delete_item(body: DeleteItem, services: ServicesDep, owner: OwnerDep) -> Response:
    """Delete an item (deleting a missing item is not an error)."""
    await _store(services, owner).adelete(tuple(body.namespace), body.key)
    return Response(status_code=204)


@router.post("/items/search", response_model=AS_RETURNED)
async def search_items(
    body: SearchItems, services: ServicesDep, owner: OwnerDep
) -> dict[str, list[JsonObject]]:
    """Items under a namespace prefix, filtered by value fields or ranked by `query`."""
    items = await _store(services, owner).asearch(
        tuple(body.namespace_prefix),
        query=body.query,
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        refresh_ttl=body.refresh_ttl,
    )
    return {"items": [item.dict() for item in items]}


@router.post("/namespaces", response_model=AS_RETURNED)
async def list_namespaces(
    body: ListNamespaces, services: ServicesDep, owner: OwnerDep
) -> dict[str, list[list[str]]]:
    """The caller's namespaces, optionally by prefix, suffix and truncated to `max_depth`."""
    namespaces = await _store(services, owner).alist_namespaces(
        prefix=tuple(body.prefix) if body.prefix else None,
        suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return {"namespaces": [list(ns) for ns in namespaces]}
