"""The `checkpointer` key of a `langgraph.json`: thread TTL defaults and checkpoint retention.

The official schema (`langgraph_api/config/schemas.py`, `DefaultCheckpointerConfig` and
`ThreadTTLConfig`):

    "checkpointer": {
        "ttl": {"strategy": "delete" | "keep_latest", "default_ttl": <minutes>,
                "sweep_interval_minutes": <minutes>, "sweep_limit": <threads>},
        "serde": {...}, "backend": "default" | "custom" | "mongo", "path": ..., "uri": ...
    }

Trellis applies `ttl` and adds `keep_last` (keep only the last N checkpoints of each
thread). `backend: "default"` is what Trellis runs; the other backends, `path`, `uri` and
`serde` are warned about (one line each) and ignored. A wrong value raises
`CheckpointerConfigError` with one line naming the key.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("trellis")

Strategy = Literal["delete", "keep_latest"]


class CheckpointerConfigError(ValueError):
    """A `checkpointer` value of a `langgraph.json` is wrong; the message names the key."""


@dataclass(frozen=True)
class ThreadTtlDefaults:
    """`checkpointer.ttl`: what threads without a TTL of their own get, and how often to sweep."""

    strategy: Strategy = "delete"
    default_ttl: float | None = None
    """Minutes; None: threads without a TTL of their own never expire."""
    sweep_interval_minutes: float | None = None
    sweep_limit: int | None = None


@dataclass(frozen=True)
class CheckpointerConfig:
    """The parsed `checkpointer` key (all defaults when absent)."""

    ttl: ThreadTtlDefaults = ThreadTtlDefaults()
    keep_last: int | None = None
    """Keep only this many checkpoints per thread (a Trellis extension); None: all."""


_IGNORED = ("serde", "path", "uri")


def _minutes(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CheckpointerConfigError(f"'{key}' must be a number of minutes, got {value!r}")
    if value <= 0:
        raise CheckpointerConfigError(f"'{key}' must be positive, got {value!r}")
    return float(value)


def _count(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointerConfigError(f"'{key}' must be a positive integer, got {value!r}")
    return value


def _ttl(raw: object) -> ThreadTtlDefaults:
    if raw is None:
        return ThreadTtlDefaults()
    if not isinstance(raw, dict):
        raise CheckpointerConfigError(f"'checkpointer.ttl' must be an object, got {raw!r}")
    strategy = raw.get("strategy", "delete")
    if strategy not in ("delete", "keep_latest"):
        raise CheckpointerConfigError(
            f"'checkpointer.ttl.strategy' must be 'delete' or 'keep_latest', got {strategy!r}"
        )
    for key in raw:
        if key not in ("strategy", "default_ttl", "sweep_interval_minutes", "sweep_limit"):
            log.warning("langgraph.json: 'checkpointer.ttl.%s' is not supported; ignored", key)

    def get(key: str) -> object:
        return raw.get(key)

    default_ttl = get("default_ttl")
    interval = get("sweep_interval_minutes")
    limit = get("sweep_limit")
    return ThreadTtlDefaults(
        strategy=strategy,
        default_ttl=None
        if default_ttl is None
        else _minutes(default_ttl, "checkpointer.ttl.default_ttl"),
        sweep_interval_minutes=(
            None
            if interval is None
            else _minutes(interval, "checkpointer.ttl.sweep_interval_minutes")
        ),
        sweep_limit=None if limit is None else _count(limit, "checkpointer.ttl.sweep_limit"),
    )


def read_checkpointer(raw: object) -> CheckpointerConfig:
    """Parse and validate a `langgraph.json`'s `checkpointer` value (None: absent)."""
    if raw is None:
        return CheckpointerConfig()
    if not isinstance(raw, dict):
        raise CheckpointerConfigError(f"'checkpointer' must be an object, got {raw!r}")
    backend = raw.get("backend", "default")
    if backend != "default":
        log.warning(
            "langgraph.json: 'checkpointer.backend' %r is not supported; Trellis keeps "
            "checkpoints in its own Postgres",
            backend,
        )
    for key in raw:
        if key in _IGNORED:
            log.warning("langgraph.json: 'checkpointer.%s' is not supported; ignored", key)
        elif key not in ("ttl", "backend", "keep_last"):
            log.warning("langgraph.json: 'checkpointer.%s' is not a known key; ignored", key)
    keep_last = raw.get("keep_last")
    return CheckpointerConfig(
        ttl=_ttl(raw.get("ttl")),
        keep_last=None if keep_last is None else _count(keep_last, "checkpointer.keep_last"),
    )
