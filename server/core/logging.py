"""Structured logging: one JSON object per line (or `key=value` text), with request and run
context; and how a fatal error is reported (the full record, then one line for a human)."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_TEXT_SKIPPED = {"color_message"}  # uvicorn's copy of the message with terminal colours
_BARE = re.compile(r"^[^\s\"'=]+$")

log = logging.getLogger("trellis")


@dataclass(frozen=True)
class RequestInfo:
    """The request being served: what a run it creates keeps of it."""

    request_id: str
    traceparent: str | None = None
    """Its W3C `traceparent` header, when it had a valid one."""


_REQUEST: ContextVar[RequestInfo | None] = ContextVar("trellis_request", default=None)
_RUN: ContextVar[dict[str, str] | None] = ContextVar("trellis_log_run", default=None)


def current_request() -> RequestInfo | None:
    """The request this code serves (None outside one)."""
    return _REQUEST.get()


@contextlib.contextmanager
def serving(request: RequestInfo) -> Iterator[None]:
    """Within: `current_request()` is `request` and log lines carry its `request_id`."""
    token = _REQUEST.set(request)
    try:
        yield
    finally:
        _REQUEST.reset(token)


def bind_run(**context: str) -> None:
    """From here on in this task (and the tasks it starts), every log line carries
    `context` (a run's run_id, thread_id, assistant_id, request_id)."""
    _RUN.set({**(_RUN.get() or {}), **context})


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: object, **kwargs: object) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    # Kept aside (not as attributes: a call's own `extra` may name the same keys, which
    # `makeRecord` refuses to overwrite); `fields` merges it under the call's own.
    if (run := _RUN.get()) is not None:
        record._trellis_context = run
    elif (request := _REQUEST.get()) is not None:
        record._trellis_context = {"request_id": request.request_id}
    return record


def install_context() -> None:
    """Let every log record carry the run or request context (idempotent)."""
    if logging.getLogRecordFactory() is not _record_with_context:
        logging.setLogRecordFactory(_record_with_context)


def fields(record: logging.LogRecord) -> dict[str, object]:
    """A record's structured fields: the run or request it was logged in (`bind_run`,
    `serving`), then what its `extra=` added to the standard attributes."""
    context: dict[str, object] = dict(getattr(record, "_trellis_context", None) or {})
    context.update(
        (key, value)
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    )
    return context


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
    install_context()
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
