"""Named statements: a duration histogram, and a slow-query line without the parameters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from server.core import metrics


@pytest.fixture
def slow_threshold() -> Iterator[None]:
    """Restore the default threshold after the test."""
    yield
    metrics.log_slow_queries(0.5)


@metrics.statement("test.lookup")
async def lookup(secret: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return secret.upper()


def count(name: str) -> float:
    value = REGISTRY.get_sample_value(
        "trellis_db_query_duration_seconds_count", {"statement": name}
    )
    return value or 0.0


async def test_a_slow_statement_is_logged_by_name_and_duration_only(
    caplog: pytest.LogCaptureFixture, slow_threshold: None
) -> None:
    metrics.log_slow_queries(0.05)
    before = count("test.lookup")
    with caplog.at_level(logging.WARNING, logger="trellis.db.slow"):
        assert await lookup("quick-secret", 0) == "QUICK-SECRET"
        assert await lookup("slow-secret", 0.06) == "SLOW-SECRET"
    assert count("test.lookup") - before == 2
    [record] = [r for r in caplog.records if r.name == "trellis.db.slow"]
    assert record.getMessage() == "slow query"
    assert record.statement == "test.lookup"  # type: ignore[attr-defined]
    assert record.duration_ms >= 60  # type: ignore[attr-defined]
    assert "secret" not in str(record.__dict__).lower().replace("slow query", "")


async def test_no_slow_query_lines_when_off(
    caplog: pytest.LogCaptureFixture, slow_threshold: None
) -> None:
    metrics.log_slow_queries(None)
    with caplog.at_level(logging.WARNING, logger="trellis.db.slow"):
        await lookup("x", 0.01)
    assert [r for r in caplog.records if r.name == "trellis.db.slow"] == []
