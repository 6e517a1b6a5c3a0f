"""Rate limits, body limits, field limits, and crafted checkpoint rows."""

from __future__ import annotations

import asyncio
import pickle
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import ormsgpack
import psycopg
from langgraph.checkpoint.serde import jsonplus

from tests.support.security import security_settings, trellis


async def test_rate_limit_429_and_recovery(security_db: str) -> None:
    settings = security_settings(security_db, rate_limit_read="3/2 seconds")
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        statuses = [(await http.post("/threads/search", json={})).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await http.post("/threads/search", json={})
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        retry = int(limited.headers["retry-after"])
        assert 1 <= retry <= 2
        assert (await http.post("/threads", json={})).status_code == 200  # another bucket
        await asyncio.sleep(2.1)
        assert (await http.post("/threads/search", json={})).status_code == 200


async def test_rate_limits_fail_open_without_redis(security_db: str) -> None:
    settings = security_settings(
        security_db,
        rate_limit_read="1/minute",
        rate_limit_storage_url="async+redis://127.0.0.1:1/0",
    )
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        for _ in range(3):
            assert (await http.post("/threads/search", json={})).status_code == 200


async def test_body_limits(security_db: str) -> None:
    settings = security_settings(security_db, max_body_bytes=64 * 1024, max_metadata_bytes=1024)
    async with trellis(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            declared = await http.post("/threads", content=b"{" + b" " * 100_000 + b"}")
            assert declared.status_code == 413
            assert declared.json()["code"] == "payload_too_large"
            metadata = await http.post("/threads", json={"metadata": {"x": "y" * 2000}})
            assert metadata.status_code == 422
            assert metadata.json()["code"] == "payload_limit"
            modes = await http.post(
                "/runs", json={"assistant_id": "echo", "stream_mode": ["values"] * 40}
            )
            assert modes.status_code == 422

        # A chunked body sent slowly is refused as soon as it crosses the limit.
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(
            b"POST /threads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 8192
        total_chunks, sent, response = 40, 0, b""
        for _ in range(total_chunks):
            try:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            except ConnectionError:
                break
            sent += 1
            try:
                response = await asyncio.wait_for(reader.read(4096), 0.05)
            except TimeoutError:
                continue
            if response:
                break
        if not response:
            response = await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        assert response.startswith(b"HTTP/1.1 413"), response[:100]
        assert sent < total_chunks
        assert sent * len(chunk) <= 64 * 1024 + 2 * len(chunk)


def _ext(code: int, payload: object) -> bytes:
    return ormsgpack.packb(ormsgpack.Ext(code, ormsgpack.packb(payload)))


async def test_crafted_checkpoints_are_refused(security_db: str, tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    crafted = {
        "unregistered class": (
            "msgpack",
            _ext(2, ("tests.support.boom", "Boom", {"path": str(marker)})),
        ),
        "positional constructor": (
            "msgpack",
            _ext(1, ("tests.support.boom", "Boom", [str(marker)])),
        ),
        "pickle": ("pickle", pickle.dumps({"a": 1})),
        "json constructor": (
            "json",
            (
                '{"lc": 2, "type": "constructor", "id": ["tests", "support", "boom", "Boom"],'
                f' "kwargs": {{"path": "{marker}"}}}}'
            ).encode(),
        ),
    }
    settings = security_settings(security_db)
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=20) as http:
        threads = {}
        for name in crafted:
            thread = (await http.post("/threads", json={})).json()
            done = await http.post(
                f"/threads/{thread['thread_id']}/runs/wait",
                json={"assistant_id": "echo", "input": {"text": "hi"}},
            )
            assert done.status_code == 200
            threads[name] = thread["thread_id"]
        with psycopg.connect(settings.psycopg_url, autocommit=True) as conn:
            for name, (type_, blob) in crafted.items():
                changed = conn.execute(
                    "UPDATE checkpoint_blobs SET type = %s, blob = %s WHERE thread_id = %s",
                    (type_, blob, threads[name]),
                ).rowcount
                assert changed > 0
        for name, thread_id in threads.items():
            state = await http.get(f"/threads/{thread_id}/state")
            assert state.status_code == 500, (name, state.text)
            assert state.json()["code"] == "checkpoint_rejected", name
            history = await http.post(f"/threads/{thread_id}/history", json={})
            assert history.status_code == 500
        assert not marker.exists()
        # The server is still healthy.
        assert (await http.get("/ok")).status_code == 200
    assert time.time() > 0
    assert jsonplus.EXT_CONSTRUCTOR_KW_ARGS == 2
