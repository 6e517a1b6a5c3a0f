"""The `store` key of a `langgraph.json`: item TTLs and the semantic-search index, validated.

The shapes are the official server's (`langgraph_api.config.schemas.StoreConfig`,
`TTLConfig`, `IndexConfig`):

    "store": {
      "ttl":   {"default_ttl": 60, "refresh_on_read": true, "sweep_interval_minutes": 5},
      "index": {"dims": 384, "embed": "openai:text-embedding-3-small", "fields": ["text"]}
    }

A wrong value raises `StoreConfigError` with one line naming the key (`store.ttl.default_ttl:
...`). Keys Trellis does not implement (`store.path`, a custom store) or does not know are
returned in `StoreConfig.ignored`, for one warning line each at startup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_SWEEP_MINUTES = 5.0
"""How often expired items are swept when `store.ttl.sweep_interval_minutes` is not set
(LangGraph's own sweeper default)."""

MINILM_DIMS = 384
"""Dimensions of the local all-MiniLM-L6-v2 model, the default embedder."""


class StoreConfigError(ValueError):
    """Raise when `langgraph.json`'s `store` has a wrong value; the message names the key."""


@dataclass(frozen=True)
class StoreTTL:
    """`store.ttl`: how items expire."""

    default_ttl: float | None = None
    """Minutes a new item lives when its `PUT` gives no `ttl` (None: forever)."""
    refresh_on_read: bool = True
    """Whether get and search extend an item's expiry when the request does not say."""
    sweep_interval_minutes: float = DEFAULT_SWEEP_MINUTES
    """Minutes between two sweeps deleting expired items."""


@dataclass(frozen=True)
class StoreIndex:
    """`store.index`: semantic search over item values."""

    dims: int
    """Length of the embedding vectors."""
    embed: str | None = None
    """`openai:<model>`, `./file.py:name`, or None for the local MiniLM model."""
    fields: tuple[str, ...] = ("$",)
    """JSON paths of the value to embed (`$`: the whole value)."""


@dataclass(frozen=True)
class StoreConfig:
    """A parsed `store` key."""

    ttl: StoreTTL = field(default_factory=StoreTTL)
    index: StoreIndex | None = None
    ignored: tuple[str, ...] = ()
    """Keys that are present but not implemented (each worth one warning line)."""


_TTL_KEYS = ("default_ttl", "refresh_on_read", "sweep_interval_minutes")
_INDEX_KEYS = ("dims", "embed", "fields")


def _minutes(value: object, key: str, *, nullable: bool) -> float | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StoreConfigError(f"{key}: expected a number of minutes, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise StoreConfigError(f"{key}: expected a positive number of minutes, got {value!r}")
    return float(value)


def _object(value: object, key: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise StoreConfigError(f"{key}: expected an object, got {value!r}")
    return value


def _unknown(raw: dict[str, object], known: tuple[str, ...], key: str) -> list[str]:
    return [f"{key}.{name}" for name in raw if name not in known]


def _ttl(raw: dict[str, object], ignored: list[str]) -> StoreTTL:
    ignored.extend(_unknown(raw, _TTL_KEYS, "store.ttl"))
    refresh = raw.get("refresh_on_read", True)
    if not isinstance(refresh, bool):
        raise StoreConfigError(
            f"store.ttl.refresh_on_read: expected true or false, got {refresh!r}"
        )
    sweep = _minutes(
        raw.get("sweep_interval_minutes"), "store.ttl.sweep_interval_minutes", nullable=True
    )
    return StoreTTL(
        default_ttl=_minutes(raw.get("default_ttl"), "store.ttl.default_ttl", nullable=True),
        refresh_on_read=refresh,
        sweep_interval_minutes=sweep if sweep is not None else DEFAULT_SWEEP_MINUTES,
    )


def _known_embed(embed: str) -> bool:
    target, _, name = embed.rpartition(":")
    if not target or not name:
        return False
    if target == "openai":
        return True
    return target.endswith(".py") or "/" in target or "." in target


def _index(raw: dict[str, object], ignored: list[str]) -> StoreIndex:
    ignored.extend(_unknown(raw, _INDEX_KEYS, "store.index"))
    embed = raw.get("embed")
    if embed is not None and (not isinstance(embed, str) or not embed.strip()):
        raise StoreConfigError(
            f"store.index.embed: expected 'openai:<model>' or './file.py:name', got {embed!r}"
        )
    if isinstance(embed, str) and not _known_embed(embed):
        raise StoreConfigError(
            f"store.index.embed: {embed!r} is not supported; "
            "use 'openai:<model>' or './file.py:name'"
        )
    dims = raw.get("dims", MINILM_DIMS if embed is None else None)
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 65_536:
        raise StoreConfigError(
            f"store.index.dims: expected a whole number of dimensions, got {dims!r}"
        )
    if embed is None and dims != MINILM_DIMS:
        raise StoreConfigError(
            f"store.index.dims: the default embedder (local all-MiniLM-L6-v2) has "
            f"{MINILM_DIMS} dimensions, got {dims}; name another model in store.index.embed"
        )
    fields = raw.get("fields")
    if fields is None:
        paths: tuple[str, ...] = ("$",)
    elif (
        isinstance(fields, list)
        and fields
        and all(isinstance(f, str) and f.strip() for f in fields)
    ):
        paths = tuple(str(f) for f in fields)
    else:
        raise StoreConfigError(
            f"store.index.fields: expected a non-empty list of JSON paths, got {fields!r}"
        )
    return StoreIndex(dims=dims, embed=embed, fields=paths)


def parse_store_config(raw: object) -> StoreConfig:
    """Validate the `store` value of a `langgraph.json` (None when the key is absent)."""
    if raw is None:
        return StoreConfig()
    store = _object(raw, "store")
    ignored = _unknown(store, ("ttl", "index"), "store")
    ttl_raw = store.get("ttl")
    ttl = StoreTTL() if ttl_raw is None else _ttl(_object(ttl_raw, "store.ttl"), ignored)
    index_raw = store.get("index")
    index = None if index_raw is None else _index(_object(index_raw, "store.index"), ignored)
    return StoreConfig(ttl=ttl, index=index, ignored=tuple(ignored))
