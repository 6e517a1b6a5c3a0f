"""Security events: one structured log record each, on the `trellis.security` logger.

Events never carry secrets: at most a key's public id, an identity, a client
address, a path and a reason.
"""

from __future__ import annotations

import logging
from typing import Literal

from server.core import metrics

log = logging.getLogger("trellis.security")

SecurityEvent = Literal[
    "auth_failed",
    "revoked_key_used",
    "forbidden",
    "rate_limited",
    "cross_owner_access",
    "body_too_large",
    "checkpoint_rejected",
    "local_only_refused",
]
"""What happened: a failed authentication, a revoked API key presented, an authorization
handler refusing, a rate limit hit, an id found under another owner, an oversized body,
a checkpoint that tried to revive a class outside the allowlist, or (with `AUTH_MODE=none`)
a cross-site request or a foreign `Host` refused."""


def security_event(event: SecurityEvent, **fields: object) -> None:
    """Log one security event with its fields as structured `extra` data."""
    log.warning(event, extra={"security_event": event, **fields})
    if event == "rate_limited":
        metrics.RATE_LIMITED.labels(str(fields.get("bucket", "unknown"))).inc()
    elif event == "auth_failed":
        metrics.AUTH_FAILURES.labels(str(fields.get("mode", "unknown"))).inc()
