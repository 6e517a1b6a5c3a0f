"""What a process does when Redis does not answer as it starts."""

from __future__ import annotations

import pytest

from server.core.settings import Settings
from server.runs.events import MemoryEventBus
from server.runs.redis_events import RedisEventBus
from server.services import open_event_bus, open_redis
from tests.support.servers import free_port


def no_redis() -> Settings:
    return Settings(environment="test", redis_url=f"redis://127.0.0.1:{free_port()}/0")


async def test_a_lone_server_keeps_events_in_its_own_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = no_redis()
    redis = await open_redis(settings)
    assert redis is None
    assert isinstance(open_event_bus(settings, redis), MemoryEventBus)
    assert "events and caches stay in this process" in caplog.text


async def test_a_worker_started_during_a_redis_outage_still_publishes_to_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Its events in its own memory would reach no API process: it buffers for Redis instead.
    settings = no_redis()
    redis = await open_redis(settings, required=True)
    assert redis is not None
    try:
        bus = open_event_bus(settings, redis)
        assert isinstance(bus, RedisEventBus)
        await bus.close()
    finally:
        await redis.aclose()
    assert "run events are buffered until it does" in caplog.text
