"""Prometheus metrics: every `trellis_*` series a process exports, and how it is rendered.

The counters and histograms live in prometheus-client's default registry, one per process:
the API serves them at `GET /metrics`, a `trellis worker` on its own port (`METRICS_PORT`).
Labels are bounded: graph ids (from `langgraph.json`), statuses, route templates, buckets;
never a thread, run or assistant id.

What is a fact of the database rather than of a process (the queue) is read on scrape by
the API and rendered with `render(queue=...)`, so every API replica reports the same value
(aggregate it with `max`, not `sum`). Pool gauges are read on scrape from the pools a
process registered with `watch_pool`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "PoolStats", "QueueStats", "render"]

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

RUNS_CREATED = Counter(
    "trellis_runs_created_total", "Runs created (queued), by graph.", ["graph_id"]
)
RUNS_STARTED = Counter(
    "trellis_runs_started_total",
    "Run executions started by this process' executor (a retried run counts again).",
    ["graph_id"],
)
RUNS_FINISHED = Counter(
    "trellis_runs_finished_total",
    "Run executions ended by this process' executor, by graph and ending "
    "(success, error, timeout, interrupted, rollback).",
    ["graph_id", "status"],
)
RUN_DURATION = Histogram(
    "trellis_run_duration_seconds",
    "Wall time of a run execution, claim to finish.",
    ["graph_id", "status"],
    buckets=_DURATION_BUCKETS,
)
LEASE_TAKEOVERS = Counter(
    "trellis_run_lease_takeovers_total",
    "Runs whose worker's lease lapsed, requeued by a sweep for another worker to take over.",
)
RUN_FIRST_EVENT = Histogram(
    "trellis_run_first_event_seconds",
    "Time from a run execution's start to the first part its graph streamed.",
    ["graph_id"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FENCED_WRITES = Counter(
    "trellis_run_fenced_writes_total",
    "Writes refused because the worker no longer held the run's lease, by write "
    "(checkpoint: a step's checkpoint; outcome: the run's ending).",
    ["write"],
)
CANCELLATIONS = Counter(
    "trellis_run_cancellations_total",
    "Runs cancelled, by action (interrupt, rollback) and what the run was (pending, running).",
    ["action", "state"],
)
NODE_DURATION = Histogram(
    "trellis_node_duration_seconds",
    "Duration of a graph node's step, by graph, node and outcome (ok, error).",
    ["graph_id", "node", "outcome"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
MODEL_CALLS = Counter(
    "trellis_model_calls_total",
    "Chat model calls, by provider, model, prompt version and outcome (ok, error).",
    ["provider", "model", "prompt_version", "outcome"],
)
MODEL_DURATION = Histogram(
    "trellis_model_call_duration_seconds",
    "Chat model call latency, by provider, model and prompt version.",
    ["provider", "model", "prompt_version"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
MODEL_TOKENS = Counter(
    "trellis_model_tokens_total",
    "Tokens of chat model calls as the provider reported them, by direction (in, out).",
    ["provider", "model", "prompt_version", "direction"],
)
TOOL_RETRIES = Counter(
    "trellis_tool_retries_total",
    "Calls the tools layer retried (a model or embedding request), by operation.",
    ["operation"],
)
TOOL_FALLBACKS = Counter(
    "trellis_tool_fallbacks_total",
    "Times the tools layer fell back to a lesser path, by operation and fallback used.",
    ["operation", "fallback"],
)
RETRIEVAL_DURATION = Histogram(
    "trellis_retrieval_duration_seconds",
    "Retriever search latency, by collection.",
    ["collection"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RETRIEVAL_HITS = Counter(
    "trellis_retrieval_hits_total", "Documents retrievers returned, by collection.", ["collection"]
)
CACHE_LOOKUPS = Counter(
    "trellis_cache_lookups_total",
    "Cache lookups of the tools layer, by cache and result (hit, miss); the hit ratio is "
    "hit / (hit + miss).",
    ["cache", "result"],
)
REDIS_DURATION = Histogram(
    "trellis_redis_command_duration_seconds",
    "Redis command latency, by command name and outcome (ok, error).",
    ["command", "outcome"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
THREADS_SWEPT = Counter(
    "trellis_threads_swept_total",
    "Threads the thread sweeper acted on, by action (delete and keep_latest: an expired "
    "TTL; keep_last: checkpoints trimmed to the last N kept).",
    ["action"],
)
STORE_ITEMS_SWEPT = Counter(
    "trellis_store_items_swept_total",
    "Expired store items deleted by the store sweeper.",
)
HTTP_DURATION = Histogram(
    "trellis_http_request_duration_seconds",
    "HTTP request duration (until the response ends; streams included), by route template.",
    ["method", "route", "status"],
    buckets=_HTTP_BUCKETS,
)
SSE_OPEN = Gauge("trellis_sse_streams_open", "Server-sent event streams open now.")
RATE_LIMITED = Counter(
    "trellis_rate_limit_rejections_total",
    "Requests refused with 429, by rate-limit bucket (read, write, runs, public, auth_failures).",
    ["bucket"],
)
AUTH_FAILURES = Counter(
    "trellis_auth_failures_total",
    "Requests whose credentials were missing or refused, by auth mode.",
    ["mode"],
)


QUERY_DURATION = Histogram(
    "trellis_db_query_duration_seconds",
    "Duration of the run path's named statements (claim, heartbeat, finish...).",
    ["statement"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_P = ParamSpec("_P")
_T = TypeVar("_T")
_slow_log = logging.getLogger("trellis.db.slow")
_slow_seconds: float | None = 0.5


def log_slow_queries(threshold_seconds: float | None) -> None:
    """Log a line for each named statement slower than `threshold_seconds` (None: never)."""
    global _slow_seconds
    _slow_seconds = threshold_seconds


def _observe(name: str, started: float) -> None:
    elapsed = time.perf_counter() - started
    QUERY_DURATION.labels(name).observe(elapsed)
    if _slow_seconds is not None and elapsed >= _slow_seconds:
        # The statement's name and duration only: parameters may hold user data.
        _slow_log.warning(
            "slow query",
            extra={"statement": name, "duration_ms": round(elapsed * 1000, 2)},
        )


def statement(name: str) -> Callable[[Callable[_P, Awaitable[_T]]], Callable[_P, Awaitable[_T]]]:
    """Time an async database function as statement `name` (histogram, slow-query log)."""

    def decorate(function: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
        @functools.wraps(function)
        async def timed(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                _observe(name, started)

        return timed

    return decorate


def sync_statement(name: str) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
    """`statement` for a blocking database function (the lease heartbeat's thread)."""

    def decorate(function: Callable[_P, _T]) -> Callable[_P, _T]:
        @functools.wraps(function)
        def timed(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                _observe(name, started)

        return timed

    return decorate


def run_created(graph_id: str) -> None:
    """Count one run queued for `graph_id`."""
    RUNS_CREATED.labels(graph_id).inc()


def run_started(graph_id: str) -> None:
    """Count one run execution started."""
    RUNS_STARTED.labels(graph_id).inc()


def run_cancelled(action: str, state: str) -> None:
    """Count one run cancelled with `action` while `state` (pending or running)."""
    CANCELLATIONS.labels(action, state).inc()


def fenced_write(write: str) -> None:
    """Count one write refused by the lease fence (`checkpoint` or `outcome`)."""
    FENCED_WRITES.labels(write).inc()


def run_finished(graph_id: str, status: str, seconds: float) -> None:
    """Count one run execution ended with `status`, after `seconds`."""
    RUNS_FINISHED.labels(graph_id, status).inc()
    RUN_DURATION.labels(graph_id, status).observe(seconds)


@dataclass(frozen=True)
class PoolStats:
    """A connection pool as its gauges show it."""

    size: int
    """Connections open."""
    in_use: int
    """Connections handed out."""
    waiting: int | None
    """Requests waiting for a connection (None: the pool does not say)."""


class _Pools(Collector):
    """Reads the registered pools on each scrape."""

    def __init__(self) -> None:
        self.pools: dict[str, Callable[[], PoolStats]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        read = {name: stats() for name, stats in list(self.pools.items())}
        families = {
            "size": GaugeMetricFamily(
                "trellis_db_pool_size", "Database connections open, by pool.", labels=["pool"]
            ),
            "in_use": GaugeMetricFamily(
                "trellis_db_pool_in_use", "Database connections handed out.", labels=["pool"]
            ),
            "waiting": GaugeMetricFamily(
                "trellis_db_pool_waiting",
                "Requests waiting for a database connection.",
                labels=["pool"],
            ),
        }
        for name, stats in read.items():
            families["size"].add_metric([name], stats.size)
            families["in_use"].add_metric([name], stats.in_use)
            if stats.waiting is not None:
                families["waiting"].add_metric([name], stats.waiting)
        yield from families.values()


_POOLS = _Pools()
REGISTRY.register(_POOLS)


def watch_pool(name: str, stats: Callable[[], PoolStats]) -> Callable[[], None]:
    """Export `stats()` as the gauges of pool `name` on every scrape; returns the undo."""
    _POOLS.pools[name] = stats

    def unwatch() -> None:
        if _POOLS.pools.get(name) is stats:
            del _POOLS.pools[name]

    return unwatch


@dataclass(frozen=True)
class QueueStats:
    """The run queue, read from the database on scrape."""

    due: int
    """Pending runs whose start time has come."""
    delayed: int
    """Pending runs created with `after_seconds` that are not due yet."""
    oldest_age_seconds: float
    """How long the oldest due run has waited (0 with none)."""


def serve(host: str, port: int) -> Callable[[], None]:
    """Serve this process' metrics at `http://host:port/` from a thread (a worker's export);
    returns the stop."""
    server, thread = start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def render(queue: QueueStats | None = None, up: Mapping[str, bool] | None = None) -> bytes:
    """The process' metrics in Prometheus' text format, with the queue's when given, and
    `trellis_<dependency>_up` for each dependency checked now (`up`: redis, qdrant)."""
    text = generate_latest(REGISTRY)
    scrape = CollectorRegistry(auto_describe=False)
    for dependency, ok in sorted((up or {}).items()):
        Gauge(
            f"trellis_{dependency}_up",
            f"Whether {dependency} answered a check during this scrape (1) or not (0).",
            registry=scrape,
        ).set(int(ok))
    if queue is None:
        return text + generate_latest(scrape)
    depth = Gauge(
        "trellis_run_queue_depth",
        "Pending runs in the queue (due: may start now; delayed: not before a later time).",
        ["state"],
        registry=scrape,
    )
    depth.labels("due").set(queue.due)
    depth.labels("delayed").set(queue.delayed)
    Gauge(
        "trellis_run_queue_oldest_age_seconds",
        "How long the oldest due pending run has waited to start.",
        registry=scrape,
    ).set(queue.oldest_age_seconds)
    return text + generate_latest(scrape)
