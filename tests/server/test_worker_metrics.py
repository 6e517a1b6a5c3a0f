"""A `trellis worker` exports its own metrics on `METRICS_PORT` (it serves no API)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import TEST_GRAPHS, free_port, spawn


def test_a_worker_serves_its_metrics_on_its_port(
    database_url: str, server_url: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "worker.log"
    worker = spawn(
        ["worker", "--config", str(TEST_GRAPHS)],
        database_url=database_url,
        env={"METRICS_PORT": str(port), "LOG_LEVEL": "INFO"},
        log=log,
    )
    try:
        deadline = time.monotonic() + 120
        while b"worker ready" not in (log.read_bytes() if log.exists() else b""):
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert answer.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(answer.text)}
    assert "trellis_runs_started" in families  # counters drop `_total` in the parser's names
    assert "trellis_run_duration_seconds" in families
    pools = {s.labels["pool"] for s in families["trellis_db_pool_size"].samples}
    assert pools == {"psycopg", "sqlalchemy"}
    # The queue is a fact of the database, reported by the API's /metrics only.
    assert "trellis_run_queue_depth" not in families
    assert worker.returncode == 0
