"""The owner-scoped view of LangGraph's store, for the Store API and for graphs at run time.

Every namespace is stored as `("trellis-owner", <owner>, *namespace)`; callers never
see or name the first two labels, so one owner cannot read, list or overwrite
another's items. The Store API binds the request's owner explicitly
(`store.bound(owner)`); graphs get the unbound store, which reads the owner of the
run it is called from out of the run's config (`langgraph_auth_user_id`, set by
the executor from the run row) and refuses to work outside a run.
"""

from __future__ import annotations

from collections.abc import Iterable

from langgraph.config import get_config
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

ROOT_LABEL = "trellis-owner"
"""First label of every namespace Trellis writes on an owner's behalf."""

SCOPE_DEPTH = 2
"""How many labels the owner scope adds in front of a namespace."""


class StoreScopeError(RuntimeError):
    """Raised when the scoped store is used outside a run and without a bound owner."""


def owner_label(owner: str) -> str:
    """The owner as one namespace label: labels may not contain `.`, so it is escaped."""
    return owner.replace("%", "%25").replace(".", "%2E")


def scope_of(owner: str) -> tuple[str, str]:
    """The labels in front of every namespace of `owner`."""
    return (ROOT_LABEL, owner_label(owner))


def _unscoped(namespace: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(namespace[SCOPE_DEPTH:])


def _scope_op(op: Op, scope: tuple[str, ...]) -> Op:
    if isinstance(op, GetOp | PutOp):
        return op._replace(namespace=(*scope, *op.namespace))
    if isinstance(op, SearchOp):
        return op._replace(namespace_prefix=(*scope, *op.namespace_prefix))
    if isinstance(op, ListNamespacesOp):
        conditions = [c for c in op.match_conditions or () if c.match_type != "prefix"]
        prefixes = [c for c in op.match_conditions or () if c.match_type == "prefix"]
        path = prefixes[0].path if prefixes else ()
        scoped = MatchCondition(match_type="prefix", path=(*scope, *path))
        return op._replace(
            match_conditions=(scoped, *conditions),
            max_depth=None if op.max_depth is None else op.max_depth + SCOPE_DEPTH,
        )
    raise TypeError(f"unknown store operation {type(op).__name__}")


def _unscope_result(result: Result) -> Result:
    if isinstance(result, SearchItem):
        return SearchItem(
            namespace=_unscoped(result.namespace),
            key=result.key,
            value=result.value,
            created_at=result.created_at,
            updated_at=result.updated_at,
            score=result.score,
        )
    if isinstance(result, Item):
        return Item(
            namespace=_unscoped(result.namespace),
            key=result.key,
            value=result.value,
            created_at=result.created_at,
            updated_at=result.updated_at,
        )
    if isinstance(result, list):
        return [_unscope_one(r) for r in result]  # type: ignore[return-value]
    return result


def _unscope_one(entry: Item | tuple[str, ...]) -> Item | tuple[str, ...]:
    if isinstance(entry, tuple):
        return _unscoped(entry)
    unscoped = _unscope_result(entry)
    assert isinstance(unscoped, Item)
    return unscoped


class OwnerScopedStore(BaseStore):
    """A `BaseStore` whose namespaces live under one owner's scope (see the module docstring)."""

    def __init__(self, inner: BaseStore, owner: str | None = None) -> None:
        self.inner = inner
        self.owner = owner
        self.supports_ttl = inner.supports_ttl
        self.ttl_config = inner.ttl_config

    def bound(self, owner: str) -> OwnerScopedStore:
        """The same store scoped to `owner` whatever the calling context."""
        return OwnerScopedStore(self.inner, owner)

    def _scope(self) -> tuple[str, ...]:
        owner = self.owner
        if owner is None:
            try:
                configurable = get_config().get("configurable", {})
            except RuntimeError as exc:
                raise StoreScopeError("the store is only available inside a run") from exc
            found = configurable.get("langgraph_auth_user_id")
            if not isinstance(found, str) or not found:
                raise StoreScopeError("this run has no owner; the store cannot be scoped")
            owner = found
        return scope_of(owner)

    def _translate(self, ops: Iterable[Op]) -> list[Op]:
        scope = self._scope()
        return [_scope_op(op, scope) for op in ops]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run operations synchronously, each under the owner's scope."""
        return [_unscope_result(r) for r in self.inner.batch(self._translate(ops))]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run operations, each under the owner's scope."""
        return [_unscope_result(r) for r in await self.inner.abatch(self._translate(ops))]
