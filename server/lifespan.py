"""The composition root: opens every pool and service in order and closes them in reverse."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.approvals import ApprovalService, ApprovalWebhook
from server.checkpoint_serde import StrictSerializer, graph_types, parse_type
from server.checkpoints import FencedPostgresSaver
from server.db import assistants as assistant_rows
from server.db import migrate
from server.db.engine import create_engine
from server.registry import GraphRegistry
from server.runs.events import EventBus, MemoryEventBus, RedisEventBus
from server.runs.executor import Completions, Executor
from server.runs.listener import Listener
from server.runs.manager import RunManager
from server.settings import ROOT, Settings
from server.store import OwnerScopedStore
from server.webhooks import WebhookPolicy, WebhookSender

log = logging.getLogger("trellis")


@dataclass
class Services:
    """Everything routes need, built once per process."""

    settings: Settings
    engine: AsyncEngine
    pool: AsyncConnectionPool[Any]
    checkpointer: FencedPostgresSaver
    store: AsyncPostgresStore
    registry: GraphRegistry
    runs: RunManager
    executor: Executor | None
    extra_info: dict[str, Any] = field(default_factory=dict)
    """What `/info` reports about the process beyond the defaults (e.g. the model provider)."""
    approvals: ApprovalService | None = None


class IdleCheck:
    """Pool health check: ping a connection only when it has not been handed out for
    `idle_seconds` (a ping on every checkout costs a round trip per query)."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._handed_out: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    async def check(self, conn: AsyncConnection[Any]) -> None:
        """The pool's `check` hook (no `reset` hook: it would make every return a task)."""
        now = time.monotonic()
        last = self._handed_out.get(conn)
        if last is None or now - last > self.idle_seconds:
            await AsyncConnectionPool.check_connection(conn)
        self._handed_out[conn] = now


async def open_pool(settings: Settings) -> AsyncConnectionPool[Any]:
    """The psycopg pool LangGraph's checkpointer and store use (autocommit, no prepares)."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        settings.psycopg_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout_seconds,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=IdleCheck(settings.db_pool_check_idle_seconds).check,
        open=False,
    )
    await pool.open(wait=True, timeout=settings.db_pool_timeout_seconds)
    return pool


async def open_redis(settings: Settings) -> Redis | None:
    """A Redis client when Redis answers at `REDIS_URL`, else None (said in the log)."""
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=None)
    try:
        await redis.ping()
    except (RedisError, OSError):
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
        return MemoryEventBus(settings.run_event_retention_seconds, settings.run_event_max_length)
    return RedisEventBus(
        redis,
        retention_seconds=settings.run_event_retention_seconds,
        max_events=settings.run_event_max_length,
        block_ms=int(settings.sse_heartbeat_seconds * 1000),
    )


def serves_builtin_graphs(registry: GraphRegistry) -> bool:
    """Whether any served graph is one of Trellis' own (they need the toolbox)."""
    return any(loaded.file.is_relative_to(ROOT / "graphs") for loaded in registry)


@asynccontextmanager
async def open_services(
    settings: Settings, *, worker: bool = True, api: bool = True
) -> AsyncIterator[Services]:
    """Open the database, LangGraph's saver and store, the graphs, and the run machinery.

    `worker`: this process executes runs; `api`: it answers requests (so it waits for runs
    that end elsewhere)."""
    async with AsyncExitStack() as stack:
        await asyncio.to_thread(migrate.upgrade_trellis, settings.sqlalchemy_url)
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        pool = await open_pool(settings)
        stack.push_async_callback(pool.close)
        serde = StrictSerializer(parse_type(t) for t in settings.checkpoint_allowed_types)
        checkpointer = FencedPostgresSaver(pool, serde=serde)
        await checkpointer.setup()
        store = AsyncPostgresStore(pool)
        await store.setup()
        registry = await GraphRegistry.load(
            settings.graphs_config, checkpointer=checkpointer, store=OwnerScopedStore(store)
        )
        for loaded in registry:
            serde.allow(graph_types(loaded.graph))  # what the graphs declare may be revived
        async with engine.begin() as conn:
            for loaded in registry:
                await assistant_rows.upsert_system(
                    conn,
                    graph_id=loaded.graph_id,
                    assistant_id=loaded.assistant_id,
                    description=loaded.description,
                )
        redis = await open_redis(settings)
        if redis is not None:
            stack.push_async_callback(redis.aclose)
        events = open_event_bus(settings, redis)
        stack.push_async_callback(events.close)
        extra_info: dict[str, Any] = {}
        if serves_builtin_graphs(registry):
            # Imported here: the built-in graph's tools (numpy, Qdrant, model clients) are
            # heavy and only needed when one of Trellis' own graphs is served.
            from server.toolbox import build_toolbox
            from tools.toolbox import install_toolbox, uninstall_toolbox

            toolbox = build_toolbox(settings, redis)
            install_toolbox(toolbox)
            stack.callback(uninstall_toolbox)
            stack.push_async_callback(toolbox.index.close)
            extra_info["model_provider"] = toolbox.provider.name
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
        webhooks = WebhookSender(
            WebhookPolicy(
                timeout=settings.webhook_timeout_seconds,
                attempts=settings.webhook_attempts,
                allow_private=settings.webhook_allow_private,
            )
        )
        stack.push_async_callback(webhooks.close)  # after the executor stops: its last hooks
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
                approvals=approvals,
                webhooks=webhooks,
            )
        listener = Listener(
            settings.psycopg_url,
            completions=completions if api else None,
            executor=executor,
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
            approvals=approvals,
            lease_seconds=settings.run_lease_seconds,
        )
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
        )


def lifespan(
    settings: Settings, *, worker: bool = True
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The FastAPI lifespan: services live on `app.state.services`."""

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, worker=worker) as services:
            app.state.services = services
            yield

    return _lifespan
