"""What the tools layer tells an observer: retries, fallbacks, retrievals, cache lookups.

The tools layer knows nothing of Prometheus (nor of ``server``): it calls the hooks of the
one ``Telemetry`` installed in this process, a no-op until someone installs another. The
server installs one that moves its metrics (``server/runs/run_telemetry.py``).
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = ["NoTelemetry", "Telemetry", "current", "install", "uninstall"]

CacheResult = Literal["hit", "miss"]
"""How a cache lookup went."""


class Telemetry(Protocol):
    """Hooks the tools layer calls; each must be cheap and must not raise."""

    def retried(self, operation: str) -> None:
        """A call (`operation`: "model", "embedding"...) is tried again after a transient error."""

    def fell_back(self, operation: str, fallback: str) -> None:
        """`operation` gave up on its first choice and used `fallback` (a bounded name)."""

    def retrieved(self, collection: str, seconds: float, hits: int) -> None:
        """A search of `collection` (its shared name, never an owner's) took `seconds`."""

    def cache_lookup(self, cache: str, result: CacheResult) -> None:
        """A lookup in cache `cache` ("chat", "embedding") was a hit or a miss."""


class NoTelemetry:
    """Tells no one (the default)."""

    def retried(self, operation: str) -> None:
        """Nothing."""

    def fell_back(self, operation: str, fallback: str) -> None:
        """Nothing."""

    def retrieved(self, collection: str, seconds: float, hits: int) -> None:
        """Nothing."""

    def cache_lookup(self, cache: str, result: CacheResult) -> None:
        """Nothing."""


_NONE = NoTelemetry()
_current: Telemetry = _NONE


def install(telemetry: Telemetry) -> None:
    """Send this process' tools telemetry to `telemetry`."""
    global _current
    _current = telemetry


def uninstall() -> None:
    """Back to telling no one."""
    global _current
    _current = _NONE


def current() -> Telemetry:
    """The installed telemetry (a no-op when none was)."""
    return _current
