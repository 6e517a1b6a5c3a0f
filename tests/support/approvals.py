"""Helpers for the approval tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


async def approvals_of(http: httpx.AsyncClient, thread_id: str, **params: Any) -> list[Any]:
    """The approvals of one thread, newest first."""
    response = await http.get("/approvals", params={"thread_id": thread_id, **params})
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()
    return found


async def pending_approval(http: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    """The thread's one pending approval."""
    pending = await approvals_of(http, thread_id, status="pending")
    assert len(pending) == 1, pending
    return dict(pending[0])


async def decide(
    http: httpx.AsyncClient, approval_id: str, decision: str, **extra: Any
) -> httpx.Response:
    return await http.post(
        f"/approvals/{approval_id}/decision", json={"decision": decision, **extra}
    )


async def wait_status(http: httpx.AsyncClient, approval_id: str, status: str) -> dict[str, Any]:
    """Poll an approval until it has `status` (for up to ten seconds)."""
    deadline = time.monotonic() + 10.0
    current: dict[str, Any] = {}
    while time.monotonic() < deadline:
        current = (await http.get(f"/approvals/{approval_id}")).json()
        if current.get("status") == status:
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"approval {approval_id} never became {status}: {current}")


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback HTTP server recording the JSON bodies POSTed to it (after `fail_first` 503s)."""
    received: list[dict[str, Any]] = []
    failures = [fail_first]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if failures[0] > 0:
                failures[0] -= 1
                self.send_response(503)
            else:
                received.append({**json.loads(body), "_headers": dict(self.headers)})
                self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
