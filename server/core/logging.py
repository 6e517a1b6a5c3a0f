"""Structured logging: one JSON object per line (or `key=value` text), with request and run
context; and how a fatal error is reported (the full record, then one line for a human)."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_TEXT_SKIPPED = {"color_message"}  # uvicorn's copy of the message with terminal colours
_BARE = re.compile(r"^[^\s\"'=]+$")

log = logging.getLogger("trellis")


def fields(record: logging.LogRecord) -> dict[str, object]:
    """A record's structured fields: what its `extra=` added to the standard attributes."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """Formats a record and its `extra` fields as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(fields(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def _text_value(value: object) -> str:
    if isinstance(value, str) and _BARE.match(value):
        return value
    return orjson.dumps(value, default=str).decode()


class TextFormatter(logging.Formatter):
    """For humans: time, level, logger, message, then each `extra` field as `key=value`
    (values with spaces or quotes JSON-quoted), then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp} {record.levelname} {record.name} {record.getMessage()}"
        pairs = [
            f"{key}={_text_value(value)}"
            for key, value in fields(record).items()
            if key not in _TEXT_SKIPPED
        ]
        if pairs:
            line += " " + " ".join(pairs)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str, fmt: str) -> None:
    """Install the root handler once (idempotent)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def summary(error: BaseException, *, limit: int = 300) -> str:
    """An error in one short line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > limit:
        first = first[: limit - 1] + "…"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def report_fatal(what: str, error: BaseException) -> None:
    """Log a fatal error as one full record (traceback included), then write one short line
    for a human on stderr: the record is for log collectors, the line for whoever started us."""
    short = summary(error)
    log.critical(
        "%s: %s",
        what,
        short,
        exc_info=error,
        extra={"event": "fatal", "error_type": type(error).__name__},
    )
    sys.stderr.write(f"trellis: {what}: {short}\n")
    sys.stderr.flush()
