"""Small helpers shared by the integration tests (no fixtures here; see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

NAMESPACE_GRAPH = "6ba7b821-9dad-11d1-80b4-00c04fd430c8"
TERMINAL = {"success", "error", "timeout", "interrupted"}


async def wait_for_run(
    client: LangGraphClient,
    thread_id: str,
    run_id: str,
    statuses: set[str],
    within: float = 15.0,
) -> dict[str, Any]:
    """Poll `runs.get` until the run's status is one of `statuses`."""
    deadline = time.monotonic() + within
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = dict(await client.runs.get(thread_id, run_id))
        if run["status"] in statuses:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {statuses}; last seen {run.get('status')}")


async def wait_for_log(
    client: LangGraphClient, thread_id: str, at_least: int, within: float = 15.0
) -> list[str]:
    """Poll the thread's state until `values.log` has `at_least` entries."""
    deadline = time.monotonic() + within
    log: list[str] = []
    while time.monotonic() < deadline:
        state = await client.threads.get_state(thread_id)
        log = list((state["values"] or {}).get("log", []))
        if len(log) >= at_least:
            return log
        await asyncio.sleep(0.05)
    raise AssertionError(f"thread {thread_id} log never reached {at_least} entries: {log}")


async def snapshot(client: LangGraphClient, thread_id: str) -> tuple[Any, int, str]:
    """What must not change after a refused request: values, history length, status."""
    state = await client.threads.get_state(thread_id)
    history = await client.threads.get_history(thread_id, limit=100)
    thread = await client.threads.get(thread_id)
    return state["values"], len(history), thread["status"]


def assert_error(
    response: httpx.Response, status: int | tuple[int, ...], code: str | None = None
) -> dict[str, Any]:
    """A JSON error body `{"detail": ..., "code": ...}` with the expected status, no traceback."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text)
    assert "Traceback" not in response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert "detail" in body, body
    assert "code" in body, body
    if code is not None:
        assert body["code"] == code, body
    return body


@dataclass
class SSEEvent:
    event: str
    data: Any
    id: str | None
    raw_data: str


def parse_sse(raw: bytes) -> tuple[list[SSEEvent], list[str]]:
    """Parse an SSE byte stream strictly: frames separated by blank lines (CRLF or LF).

    Returns the events and the comment lines (heartbeats). Every `data:` must be JSON.
    """
    text = raw.decode("utf-8").replace("\r\n", "\n")
    events: list[SSEEvent] = []
    comments: list[str] = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        name, event_id, data_lines = None, None, []
        for line in frame.split("\n"):
            if line.startswith(":"):
                comments.append(line)
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data_lines.append(value)
            elif field == "id":
                event_id = value
            elif field == "retry":
                continue
            else:
                raise AssertionError(f"unexpected SSE line {line!r} in frame {frame!r}")
        if name is None and not data_lines:
            continue
        assert name is not None, f"frame without event name: {frame!r}"
        raw_data = "\n".join(data_lines)
        events.append(SSEEvent(name, json.loads(raw_data), event_id, raw_data))
    return events, comments
