"""Run-completion webhooks: delivered with the run and its values, retried, refused for private
targets unless the settings allow them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.core.logging import TextFormatter
from server.core.settings import Settings
from server.http.app import create_app
from server.runs.webhooks import WebhookPolicy, WebhookSender, webhook_error, webhook_target
from tests.support.servers import free_port, serve_in_loop
from tools.net import FetchFailed


@dataclass
class Receiver:
    """A tiny HTTP endpoint on loopback that records JSON bodies; fails the first `failures`."""

    failures: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    got: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        self.attempts += 1
        if self.attempts <= self.failures:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        else:
            self.bodies.append(json.loads(body))
            self.got.set()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(failures=1)
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    yield rec
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="module")
async def permissive_url(settings: Settings) -> AsyncIterator[str]:
    """A second server on the same database whose settings allow private webhook targets."""
    allowing = settings.model_copy(update={"webhook_allow_private": True})
    async with serve_in_loop(create_app(allowing)) as url:
        yield url


async def test_webhook_delivered_after_a_retry(permissive_url: str, receiver: Receiver) -> None:
    client = get_client(url=permissive_url, api_key=None)
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "echo", input={"text": "hook"}, webhook=receiver.url
    )
    await asyncio.wait_for(receiver.got.wait(), 30)
    body = receiver.bodies[0]
    assert receiver.attempts == 2  # the 503 was retried
    assert body["run_id"] == run["run_id"]
    assert body["thread_id"] == thread["thread_id"]
    assert body["status"] == "success"
    assert body["values"] == {"text": "hook!", "steps": ["first", "second"]}
    assert body["run_started_at"]
    assert body["run_ended_at"]
    await client.http.client.aclose()


async def test_private_webhook_target_refused_by_default(
    client: LangGraphClient, receiver: Receiver
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "echo", input={"text": "x"}, webhook=receiver.url
    )
    await client.runs.join(thread["thread_id"], run["run_id"])
    await asyncio.sleep(0.5)
    assert receiver.attempts == 0
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


async def test_non_http_webhook_is_a_validation_error(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    response = await client.http.client.post(
        f"/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "echo", "input": {}, "webhook": "file:///etc/passwd"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://hooks.example.com/services/T0/B0/s3cret?token=abc", "https://hooks.example.com"),
        ("http://user:pa55@127.0.0.1:8080/hook#frag", "http://127.0.0.1:8080"),
        ("http://[::1]:9/x", "http://[::1]:9"),
        ("http://[::1/x", "<invalid url>"),
    ],
)
def test_a_webhook_is_logged_by_scheme_and_host_only(url: str, target: str) -> None:
    assert webhook_target(url) == target
    assert webhook_error(FetchFailed(f"posting to {url} failed: refused"), url) == (
        f"posting to {target} failed: refused"
    )


async def test_a_failed_webhook_logs_no_path_query_or_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there
    url = f"http://hook-user:pa55word@127.0.0.1:{port}/T0/B0/s3cret-path?token=s3cret-query"
    sender = WebhookSender(WebhookPolicy(timeout=2, attempts=1, allow_private=True))
    with caplog.at_level(logging.WARNING, logger="trellis.webhooks"):
        sender.send(url, {"run_id": "r"}, event="run")
        await sender.close(grace_seconds=10)
    [failed] = [r for r in caplog.records if r.getMessage() == "webhook not delivered"]
    line = TextFormatter().format(failed)
    assert f"target=http://127.0.0.1:{port}" in line
    assert "error=" in line
    for secret in ("s3cret", "pa55word", "hook-user", "/T0/B0"):
        assert secret not in line
