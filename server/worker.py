"""A worker process: executes queued runs without serving HTTP."""

from __future__ import annotations

import asyncio
import logging
import signal

from server.core import metrics
from server.core.settings import Settings
from server.services import open_services

log = logging.getLogger("trellis")


async def run_worker(settings: Settings) -> None:
    """Claim and execute runs until SIGTERM or SIGINT; then drain gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stop_metrics = None
    if settings.metrics_enabled and settings.metrics_port is not None:
        stop_metrics = metrics.serve(settings.metrics_host, settings.metrics_port)
        log.info("worker metrics", extra={"port": settings.metrics_port})
    try:
        async with open_services(settings, worker=True, api=False):
            log.info("worker ready")
            await stop.wait()
            log.info("worker stopping")
    finally:
        if stop_metrics is not None:
            stop_metrics()
