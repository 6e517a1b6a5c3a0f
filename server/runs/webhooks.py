"""Outbound webhooks: POSTs through the outbound guard, retried with backoff."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from server.core.encoding import dumps
from server.core.types import JsonValue, RunRow
from tools.net import FetchFailed, OutboundError, post_json_public

log = logging.getLogger("trellis.webhooks")


@dataclass(frozen=True)
class WebhookPolicy:
    """How webhooks are sent: per-attempt timeout, attempts, and whether private targets are ok."""

    timeout: float = 10.0
    attempts: int = 5
    allow_private: bool = False
    backoff_max: float = 30.0


async def deliver(url: str, payload: object, *, event: str, policy: WebhookPolicy) -> None:
    """POST `payload` as JSON to `url`; transient failures are retried, a refused URL is not."""
    body = dumps(payload)
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=0.5, max=policy.backoff_max),
        retry=retry_if_exception_type(FetchFailed),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await post_json_public(
                url,
                body,
                timeout=policy.timeout,
                allow_private=policy.allow_private,
                headers={"X-Trellis-Event": event},
            )


class WebhookSender:
    """Sends webhooks in the background, keeping track of deliveries until shutdown."""

    def __init__(self, policy: WebhookPolicy) -> None:
        self.policy = policy
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, url: str, payload: object, *, event: str) -> None:
        """Deliver in the background; failures are logged, never raised to the caller."""
        task = asyncio.create_task(self._send(url, payload, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, url: str, payload: object, event: str) -> None:
        try:
            await deliver(url, payload, event=event, policy=self.policy)
        except OutboundError as exc:
            log.warning(
                "webhook not delivered",
                extra={"event": event, "target": url.split("?")[0], "error": str(exc)},
            )

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Give deliveries in flight a moment, then cancel them."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=grace_seconds)
        for task in list(self._pending):
            task.cancel()


def run_payload(run: RunRow, status: str, values: JsonValue) -> dict[str, object]:
    """The body of a run-completion webhook, shaped like the official server's."""
    ended = datetime.now(UTC).isoformat()
    public = {
        k: (str(v) if k in ("run_id", "thread_id", "assistant_id") else v)
        for k, v in run.items()
        if k in ("run_id", "thread_id", "assistant_id", "metadata", "kwargs", "multitask_strategy")
    }
    started = run.get("started_at")
    return {
        **public,
        "status": status,
        "created_at": _iso(run.get("created_at")),
        "run_started_at": _iso(started),
        "run_ended_at": ended,
        "webhook_sent_at": ended,
        "values": values,
    }


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
