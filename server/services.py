"""The composition root: opens every pool and service in order and closes them in reverse."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from langgraph.store.postgres.aio import AsyncPostgresStore
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.approvals.service import ApprovalService, ApprovalWebhook
from server.core import metrics, tracing
from server.core.schemas import ThreadTTL
from server.core.settings import ROOT, Settings
from server.core.types import JsonObject
from server.db import assistant_rows, migrate
from server.db.checkpoint_serde import StrictSerializer, graph_types, parse_type
from server.db.checkpoints import FencedPostgresSaver
from server.db.engine import create_engine
from server.db.owner_store import OwnerScopedStore
from server.db.pool import Pool, open_pool
from server.db.store_sweeper import StoreSweeper
from server.db.trellis_store import TrellisStore
from server.graph_host.registry import GraphLoadError, GraphRegistry, read_config
from server.resources.assistant_service import AssistantService, warn_unserved
from server.resources.thread_service import ThreadService
from server.resources.thread_sweeper import ThreadSweeper
from server.runs.events import EventBus, MemoryEventBus
from server.runs.executor import Executor
from server.runs.listener import Listener
from server.runs.manager import RunManager
from server.runs.redis_events import RedisEventBus
from server.runs.run_limits import RunLimits
from server.runs.run_telemetry import ToolsTelemetry
from server.runs.signals import Completions, ThreadRuns
from server.runs.webhooks import WebhookPolicy, WebhookSender
from tools import telemetry as tools_telemetry

log = logging.getLogger("trellis")


@dataclass
class Services:
    """Everything routes need, built once per process."""

    settings: Settings
    engine: AsyncEngine
    pool: Pool
    """LangGraph's saver and store share it (rows as dicts)."""
    checkpointer: FencedPostgresSaver
    store: AsyncPostgresStore
    registry: GraphRegistry
    runs: RunManager
    executor: Executor | None
    extra_info: JsonObject = field(default_factory=dict)
    """What `/info` reports about the process beyond the defaults (e.g. the model provider)."""
    approvals: ApprovalService | None = None
    threads: ThreadService = field(kw_only=True)
    assistants: AssistantService = field(kw_only=True)
    store_sweeper: StoreSweeper | None = field(default=None, kw_only=True)
    """Deletes expired store items in the background."""


def psycopg_pool_stats(pool: Pool) -> metrics.PoolStats:
    """The psycopg pool's gauges (its own counts: open, idle, requests queued)."""
    stats = pool.get_stats()
    size = stats.get("pool_size", 0)
    return metrics.PoolStats(
        size, size - stats.get("pool_available", 0), stats.get("requests_waiting", 0)
    )


def engine_pool_stats(engine: AsyncEngine) -> metrics.PoolStats:
    """The SQLAlchemy engine's pool gauges (it does not count waiters)."""
    pool = engine.sync_engine.pool
    in_use: int = pool.checkedout()  # type: ignore[attr-defined]
    idle: int = pool.checkedin()  # type: ignore[attr-defined]
    return metrics.PoolStats(in_use + idle, in_use, None)


class MeteredRedis(Redis):
    """A Redis client whose commands are timed (`trellis_redis_command_duration_seconds`, by
    command name: a bounded set). Pipelines are not: they are timed as a whole nowhere."""

    async def execute_command(self, *args: object, **options: object) -> object:
        """Run one command, timed."""
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            outcome = "ok"
            return result
        finally:
            name = args[0] if args else "?"
            command = name.decode() if isinstance(name, bytes) else str(name)
            metrics.REDIS_DURATION.labels(command.upper()[:32], outcome).observe(
                time.perf_counter() - started
            )


async def open_redis(settings: Settings, *, required: bool = False) -> Redis | None:
    """A Redis client when Redis answers at `REDIS_URL`, else None (said in the log).

    `required` (a process that only executes runs): events kept in its own memory would
    reach no one, so the client is returned even while Redis does not answer yet; the event
    bus buffers until it does."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        socket_connect_timeout=2,
        socket_timeout=None,
    )
    client = MeteredRedis if settings.metrics_enabled else Redis
    redis = client.from_pool(pool)  # the client owns the pool: `aclose` closes both
    try:
        await redis.ping()
    except (RedisError, OSError) as error:
        if required:
            log.warning(
                "Redis does not answer at REDIS_URL yet; run events are buffered until it does",
                extra={"redis_url": settings.redis_url.split("@")[-1], "error": str(error)},
            )
            return redis
        await redis.aclose()
        log.warning(
            "no Redis at REDIS_URL; events and caches stay in this process (no separate workers)",
            extra={"redis_url": settings.redis_url.split("@")[-1]},
        )
        return None
    return redis


def open_event_bus(settings: Settings, redis: Redis | None) -> EventBus:
    """Redis Streams when Redis answers; otherwise in-process (a single process only)."""
    if redis is None:
        return MemoryEventBus(
            settings.run_event_retention_seconds,
            settings.run_event_max_length,
            max_bytes=settings.run_event_max_bytes,
            grace_seconds=settings.run_event_grace_seconds,
        )
    return RedisEventBus(
        redis,
        retention_seconds=settings.run_event_retention_seconds,
        max_events=settings.run_event_max_length,
        max_bytes=settings.run_event_max_bytes,
        grace_seconds=settings.run_event_grace_seconds,
        block_ms=int(settings.sse_heartbeat_seconds * 1000),
    )


def serves_builtin_graphs(registry: GraphRegistry) -> bool:
    """Whether any served graph is one of Trellis' own (they need the toolbox)."""
    return any(loaded.file.is_relative_to(ROOT / "graphs") for loaded in registry)


def thread_sweeper(
    settings: Settings, registry: GraphRegistry, engine: AsyncEngine, threads: ThreadService
) -> ThreadSweeper:
    """The sweeper, `langgraph.json`'s `checkpointer` winning over the settings."""
    config = registry.config.checkpointer
    minutes = config.ttl.sweep_interval_minutes
    return ThreadSweeper(
        engine=engine,
        threads=threads,
        interval=settings.thread_sweep_seconds if minutes is None else minutes * 60,
        limit=config.ttl.sweep_limit or settings.thread_sweep_limit,
        keep_last=config.keep_last or settings.checkpoint_keep_last,
    )


async def open_store(settings: Settings, pool: Pool) -> TrellisStore:
    """LangGraph's store with the `store` key of the `langgraph.json` applied (TTLs, index)."""
    config = read_config(settings.graphs_config)
    for key in config.store.ignored:
        log.warning("langgraph.json: %s is not supported by Trellis and is ignored", key)
    embedder = None
    if config.store.index is not None:
        # Imported here: the embedders pull numpy and model clients.
        from server.core.store_config import StoreConfigError
        from server.graph_host.store_embedder import open_store_embedder

        try:
            embedder = open_store_embedder(
                config.store.index, base=config.path.parent, settings=settings
            )
        except StoreConfigError as exc:
            raise GraphLoadError(f"{config.path}: {exc}") from exc
    store = TrellisStore(pool, config.store, embedder)
    await store.setup()
    return store


@asynccontextmanager
async def open_services(
    settings: Settings, *, worker: bool = True, api: bool = True
) -> AsyncIterator[Services]:
    """Open the database, LangGraph's saver and store, the graphs, and the run machinery.

    `worker`: this process executes runs; `api`: it answers requests (so it waits for runs
    that end elsewhere)."""
    async with AsyncExitStack() as stack:
        await asyncio.to_thread(migrate.upgrade_trellis, settings.sqlalchemy_url)
        slow = settings.db_slow_query_ms / 1000
        metrics.log_slow_queries(slow or None)
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        pool = await open_pool(settings)
        stack.push_async_callback(pool.close)
        stack.callback(metrics.watch_pool("sqlalchemy", lambda: engine_pool_stats(engine)))
        stack.callback(metrics.watch_pool("psycopg", lambda: psycopg_pool_stats(pool)))
        stack.callback(tracing.configure(settings))
        if settings.metrics_enabled:
            tools_telemetry.install(ToolsTelemetry())
            stack.callback(tools_telemetry.uninstall)
        serde = StrictSerializer(parse_type(t) for t in settings.checkpoint_allowed_types)
        checkpointer = FencedPostgresSaver(pool, serde=serde)
        await checkpointer.setup()
        store = await open_store(settings, pool)
        store_sweeper = StoreSweeper(pool, interval_seconds=store.sweep_interval_seconds)
        store_sweeper.start()
        stack.push_async_callback(store_sweeper.stop)
        registry = await GraphRegistry.load(
            settings.graphs_config,
            checkpointer=checkpointer,
            store=OwnerScopedStore(store),
            # What the graphs declare may be revived (a factory's, each time it builds one).
            on_graph=lambda graph: serde.allow(graph_types(graph)),
        )
        async with engine.begin() as conn:
            for loaded in registry:
                await assistant_rows.upsert_system(
                    conn,
                    graph_id=loaded.graph_id,
                    assistant_id=loaded.assistant_id,
                    description=loaded.description,
                )
        await warn_unserved(engine, registry)
        redis = await open_redis(settings, required=not api)
        if redis is not None:
            stack.push_async_callback(redis.aclose)
        events = open_event_bus(settings, redis)
        stack.push_async_callback(events.close)
        extra_info: JsonObject = {"redis": {"connected": redis is not None}}
        if serves_builtin_graphs(registry):
            # Imported here: the built-in graph's tools (numpy, Qdrant, model clients) are
            # heavy and only needed when one of Trellis' own graphs is served.
            from server.builtin_toolbox import build_toolbox, check_model_endpoint, describe_toolbox
            from tools.toolbox import install_toolbox, uninstall_toolbox

            toolbox = build_toolbox(settings, redis)
            install_toolbox(toolbox)
            stack.callback(uninstall_toolbox)
            stack.push_async_callback(toolbox.index.close)
            extra_info["model_provider"] = toolbox.provider.name
            extra_info.update(describe_toolbox(settings, toolbox))
            checking = asyncio.create_task(
                check_model_endpoint(settings, extra_info), name="trellis-model-endpoint-check"
            )
            stack.callback(checking.cancel)
            # Seed the sample corpus in the background: the API answers meanwhile.
            preparing = asyncio.create_task(toolbox.prepare(), name="trellis-toolbox-prepare")
            stack.callback(preparing.cancel)
        approvals = ApprovalService(
            engine=engine,
            registry=registry,
            default_ttl_seconds=settings.approval_ttl_seconds,
            webhook=ApprovalWebhook.from_settings(settings),
        )
        stack.push_async_callback(approvals.aclose)  # after the executor stops: its last notices
        completions = Completions()
        thread_runs = ThreadRuns()
        webhooks = WebhookSender(
            WebhookPolicy(
                timeout=settings.webhook_timeout_seconds,
                attempts=settings.webhook_attempts,
                allow_private=settings.webhook_allow_private,
            )
        )
        stack.push_async_callback(webhooks.close)  # after the executor stops: its last hooks
        run_limits = RunLimits.from_settings(settings)
        ttl_config = registry.config.checkpointer.ttl
        default_ttl = None
        if ttl_config.default_ttl is not None:
            default_ttl = ThreadTTL(strategy=ttl_config.strategy, ttl=ttl_config.default_ttl)
        executor = None
        if worker:
            executor = Executor(
                engine=engine,
                pool=pool,
                registry=registry,
                checkpointer=checkpointer,
                events=events,
                completions=completions,
                conninfo=settings.psycopg_url,
                concurrency=settings.run_concurrency,
                default_durability=settings.default_durability,
                lease_seconds=settings.run_lease_seconds,
                sweep_seconds=settings.run_sweep_seconds,
                fault_attempts=settings.run_fault_attempts,
                fault_backoff_seconds=settings.run_fault_backoff_seconds,
                hooks=approvals,
                # `http.disable_webhooks`: runs still execute, their webhooks are not sent.
                webhooks=None if registry.http_flag("disable_webhooks") else webhooks,
                thread_values_max_bytes=settings.thread_values_max_bytes,
                limits=run_limits,
                owner_share=settings.owner_run_share,
                measure=settings.metrics_enabled,
            )
        listener = Listener(
            settings.psycopg_url,
            completions=completions if api else None,
            executor=executor,
            thread_runs=thread_runs if api else None,
        )
        await listener.start()
        stack.push_async_callback(listener.stop)
        if executor is not None:
            await executor.start()
            stack.push_async_callback(executor.stop, settings.shutdown_grace_seconds)
        runs = RunManager(
            engine=engine,
            pool=pool,
            registry=registry,
            checkpointer=checkpointer,
            events=events,
            completions=completions,
            executor=executor,
            hooks=approvals,
            lease_seconds=settings.run_lease_seconds,
            limits=run_limits,
            thread_runs=thread_runs,
            thread_ttl=default_ttl,
        )
        threads = ThreadService(
            engine=engine,
            pool=pool,
            checkpointer=checkpointer,
            registry=registry,
            runs=runs,
            approvals=approvals,
            thread_values_max_bytes=settings.thread_values_max_bytes,
            history_budget=settings.history_max_bytes,
            default_ttl=default_ttl,
        )
        sweeper = thread_sweeper(settings, registry, engine, threads)
        sweeper.start()
        stack.push_async_callback(sweeper.stop)
        log.info("trellis ready", extra={"graphs": registry.graph_ids, "worker": worker})
        yield Services(
            settings,
            engine,
            pool,
            checkpointer,
            store,
            registry,
            runs,
            executor,
            extra_info,
            approvals,
            threads=threads,
            assistants=AssistantService(
                engine=engine, registry=registry, runs=runs, threads=threads, limits=run_limits
            ),
            store_sweeper=store_sweeper,
        )
