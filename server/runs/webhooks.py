"""Outbound webhooks: POSTs through the outbound guard, retried with backoff.

A webhook URL often carries its secret (`https://hooks.example/T0/B0/<token>`, `?key=`,
`user:password@`), so logs name its scheme and host only (`webhook_target`), and an
error's text has the URL replaced by that too (`webhook_error`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

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


def webhook_target(url: str) -> str:
    """`url` as logs show it: scheme, host and port; no credentials, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<invalid url>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def webhook_error(exc: BaseException, url: str) -> str:
    """The text of a delivery error, with `url` shown as `webhook_target` shows it."""
    return str(exc).replace(url, webhook_target(url))


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
                extra={
                    "event": event,
                    "target": webhook_target(url),
                    "error": webhook_error(exc, url),
                },
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
