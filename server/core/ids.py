"""Identifier helpers."""

from __future__ import annotations

import os
import time
import uuid

from server.core.errors import NotFound


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), as the official server issues for runs."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def parse_uuid(value: str) -> uuid.UUID | None:
    """`value` as a UUID, or None when it is not one."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


def require_uuid(value: str, what: str) -> uuid.UUID:
    """Parse an id from a path; a malformed id cannot exist, so it is a 404."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound(f"{what} {value[:80]!r} not found")
    return parsed
