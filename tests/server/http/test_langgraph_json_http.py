"""The `http` section of `langgraph.json` against the running app: custom routes (served,
authenticated when asked, shadowing as the official server lets them), CORS rules, disabled
route groups, and the startup lines of the keys Trellis does not apply."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.graph_host.config_keys import ConfigKeyError
from server.http.app import create_app
from server.http.custom_app import CustomAppError
from tests.support.security import create_key, security_settings, serve_app
from tests.support.servers import ROOT

HERE = Path(__file__).resolve().parents[2] / "support" / "http_app"


@pytest.fixture(scope="module")
async def locked(security_db: str) -> AsyncIterator[tuple[str, str]]:
    """API-key auth, custom routes authenticated, store/runs/meta disabled, strict CORS."""
    settings = security_settings(
        security_db, auth_mode="api_key", graphs_config=HERE / "langgraph.json"
    )
    async with serve_app(create_app(settings)) as url:
        key = await create_key(settings, "carol")
        yield url, key.secret_key


@pytest.fixture(scope="module")
async def open_url(security_db: str) -> AsyncIterator[str]:
    """No auth, custom routes unauthenticated, assistants and threads disabled."""
    settings = security_settings(security_db, graphs_config=HERE / "open.json")
    async with serve_app(create_app(settings)) as url:
        yield url


async def test_custom_route_served_and_authenticated(locked: tuple[str, str]) -> None:
    url, key = locked
    async with httpx.AsyncClient(base_url=url, timeout=20) as anon:
        refused = await anon.get("/hello")
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthorized"
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}, timeout=20) as carol:
        hello = await carol.get("/hello")
        assert hello.status_code == 200, hello.text
        # The caller is on request.user; the app's lifespan ran; its middleware stamped it.
        assert hello.json() == {"hello": "world", "user": "carol", "started": ["up"]}
        assert hello.headers["x-custom-middleware"] == "yes"
        posted = await carol.post("/hello", json={"a": 1})
        assert posted.json() == {"echo": {"a": 1}}
        # The custom app's own validation answers for its routes.
        assert (await carol.post("/hello", content=b"[1]")).status_code == 422
        # Its middleware wraps Trellis' routes too (`middleware_first`).
        threads = await carol.post("/threads", json={})
        assert threads.status_code == 200
        assert threads.headers["x-custom-middleware"] == "yes"


async def test_disabled_groups_answer_404(locked: tuple[str, str]) -> None:
    url, key = locked
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}, timeout=20) as carol:
        tid = (await carol.post("/threads", json={})).json()["thread_id"]
        for method, path in [
            ("PUT", "/store/items"),
            ("POST", "/store/items/search"),
            ("POST", "/runs/wait"),
            ("POST", f"/threads/{tid}/runs"),
            ("GET", f"/threads/{tid}/runs"),
            ("POST", f"/threads/{tid}/commands"),
            ("GET", "/metrics"),
            ("GET", "/docs/assets/swagger-ui.css"),
        ]:
            answer = await carol.request(method, path, json={})
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json() == {"detail": "Not Found", "code": "not_found"}
        # What is not disabled still serves; /info is the custom app's (shadowable).
        assert (await carol.get(f"/threads/{tid}")).status_code == 200
        assert (await carol.get("/assistants/echo")).status_code == 200
        assert (await carol.get("/info")).json() == {"custom": "info"}
        # disable_meta leaves no meta route unshadowable: the custom app's answer, its own
        # FastAPI spec among them (as on the official server).
        spec = (await carol.get("/openapi.json")).json()
        assert "/hello" in spec["paths"]
        assert "/threads" not in spec["paths"]
        assert (await carol.get("/ok")).json() == {"custom": "ok"}
        assert (await carol.get("/ready")).status_code == 200  # Trellis' probe stays
    async with httpx.AsyncClient(base_url=url, timeout=20) as anon:
        assert (await anon.get("/ok")).status_code == 401  # the custom one, authenticated
        # A disabled route is still behind authentication, as on the official server.
        assert (await anon.put("/store/items", json={})).status_code == 401


async def test_sdk_sees_disabled_store(locked: tuple[str, str]) -> None:
    url, key = locked
    client = get_client(url=url, api_key=key)
    try:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await client.store.put_item(["ns"], "k", {"v": 1})
        assert caught.value.response.status_code == 404
        thread = await client.threads.create()
        assert (await client.threads.get(thread["thread_id"]))["thread_id"] == thread["thread_id"]
    finally:
        await client.http.client.aclose()


async def test_cors_preflight_as_configured(locked: tuple[str, str]) -> None:
    url, _ = locked
    async with httpx.AsyncClient(base_url=url, timeout=20) as browser:
        allowed = await browser.options(
            "/hello",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert allowed.headers["access-control-max-age"] == "123"
        assert set(allowed.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
        wrong_method = await browser.options(
            "/threads",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"},
        )
        assert wrong_method.status_code == 400
        other = await browser.options(
            "/threads",
            headers={
                "Origin": "https://smith.langchain.com",
                "Access-Control-Request-Method": "GET",
            },
        )
        assert other.status_code == 400  # the default origin is replaced by the configured one
        assert "access-control-allow-origin" not in other.headers
        simple = await browser.get("/ok", headers={"Origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"
        assert simple.headers["access-control-expose-headers"] == "x-custom-middleware"


async def test_open_custom_routes_and_disabled_resources(open_url: str) -> None:
    async with httpx.AsyncClient(base_url=open_url, timeout=20) as anon:
        hello = await anon.get("/hello")
        assert hello.status_code == 200
        assert hello.json()["user"] is None  # not authenticated without enable_custom_route_auth
        assert (await anon.post("/assistants/search", json={})).status_code == 404
        assert (await anon.post("/threads", json={})).status_code == 404
        # Runs stay with the runs (official route lists), store too.
        assert (await anon.post("/runs/wait", json={})).status_code == 422
        assert (await anon.post("/store/items/search", json={})).status_code == 200
        # Meta is not disabled here: Trellis' /ok (never the custom one), /metrics and docs,
        # but the custom /info.
        assert (await anon.get("/ok")).json() == {"ok": True}
        assert (await anon.get("/openapi.json")).status_code == 200
        assert (await anon.get("/info")).json() == {"custom": "info"}
        # A method the custom route lacks, where no Trellis route takes the path: 405.
        assert (await anon.delete("/hello")).status_code == 405


async def test_custom_routes_are_in_the_openapi_document(open_url: str) -> None:
    async with httpx.AsyncClient(base_url=open_url, timeout=20) as anon:
        spec = (await anon.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths["/hello"]) == {"get", "post"}
    # The custom /info wins over Trellis' own; the custom /ok is not served, so not listed.
    assert paths["/info"]["get"]["description"].startswith("Shadows Trellis' `/info`")
    assert "Cannot shadow" not in str(paths.get("/ok", {}))
    # Trellis' API is all still there.
    assert "post" in paths["/threads/{thread_id}/runs/wait"]
    assert "put" in paths["/store/items"]


async def test_startup_lines_name_each_key(
    security_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = security_settings(security_db, graphs_config=HERE / "langgraph.json")
    with caplog.at_level(logging.INFO, logger="trellis.config"):
        create_app(settings)
    lines = {r.config_key: (r.levelno, r.getMessage()) for r in caplog.records}  # type: ignore[attr-defined]
    assert set(lines) == {"python_version", "priority", "mount_prefx", "http.mount_prefix"}
    assert lines["python_version"][0] == logging.INFO
    assert lines["priority"][0] == logging.WARNING
    assert "unknown key 'mount_prefx'" in lines["mount_prefx"][1]
    assert "reverse proxy" in lines["http.mount_prefix"][1]
    assert len(caplog.records) == 4


def test_broken_custom_app_is_one_clear_line(security_db: str) -> None:
    settings = security_settings(security_db, graphs_config=HERE / "broken.json")
    with pytest.raises(CustomAppError, match=r"broken\.py: http\.app: import failed: "):
        create_app(settings)
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--config", str(HERE / "broken.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"DATABASE_URL": security_db, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"trellis: {HERE / 'broken.py'}: http.app: import failed: ModuleNotFoundError: "
        "No module named 'a_module_that_does_not_exist'"
    ]


def test_cors_of_the_wrong_type_is_refused(security_db: str) -> None:
    """A string where a list belongs would allow each of its characters as an origin."""
    settings = security_settings(security_db, graphs_config=HERE / "bad_cors.json")
    with pytest.raises(ConfigKeyError, match=r"'http\.cors\.allow_origins' must be a list"):
        create_app(settings)


@pytest.mark.parametrize("config", ["quiet.json", "open.json"])
async def test_disable_webhooks_runs_without_sending(security_db: str, config: str) -> None:
    """With `disable_webhooks` the run completes and nothing is sent; without it, it is."""
    calls: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        calls.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    hook = await asyncio.start_server(handle, "127.0.0.1", 0)
    target = f"http://127.0.0.1:{hook.sockets[0].getsockname()[1]}/hook"
    settings = security_settings(
        security_db, graphs_config=HERE / config, webhook_allow_private=True
    )
    try:
        async with serve_app(create_app(settings)) as url:
            client = get_client(url=url, api_key=None)
            try:
                run = await client.runs.wait(
                    None, "echo", input={"text": "hook"}, webhook=target, raise_error=True
                )
                assert run is not None
                for _ in range(50):  # sent after the run ends: give it a moment either way
                    if calls:
                        break
                    await asyncio.sleep(0.1)
            finally:
                await client.http.client.aclose()
    finally:
        hook.close()
        await hook.wait_closed()
    assert len(calls) == (0 if config == "quiet.json" else 1)


async def test_custom_websocket_authenticated(locked: tuple[str, str], open_url: str) -> None:
    url, key = locked
    ws_url = url.replace("http://", "ws://") + "/echo"
    async with connect(ws_url, additional_headers={"x-api-key": key}) as ws:
        assert json.loads(await ws.recv()) == {"user": "carol"}
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        async with connect(ws_url) as ws:
            await ws.recv()
    async with connect(open_url.replace("http://", "ws://") + "/echo") as ws:
        assert json.loads(await ws.recv()) == {"user": None}


async def test_disable_meta_without_a_custom_app(security_db: str) -> None:
    settings = security_settings(security_db, graphs_config=HERE / "quiet.json")
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as anon:
        ok = await anon.get("/ok", params={"check_db": "1"})
        assert ok.status_code == 200
        assert ok.json() == {"ok": True}
        for path in ("/info", "/metrics", "/docs", "/redoc", "/openapi.json"):
            assert (await anon.get(path)).status_code == 404, path
        assert (await anon.get("/ready")).status_code == 200
        assert (await anon.post("/threads", json={})).status_code == 200


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("./app.ts:app", "is JavaScript; Trellis serves Python apps only"),
        ("./app.py:nope", "no variable 'nope' in './app.py'"),
        ("./app.py:STARTED", "'STARTED' in './app.py' is a list, not a Starlette or FastAPI"),
        ("no-colon", "expected './path/to/file.py:app'"),
        ("./missing.py:app", "missing.py: http.app: file not found"),
    ],
)
def test_custom_app_refusals_name_the_problem(
    tmp_path: Path, security_db: str, app: str, message: str
) -> None:
    config = tmp_path / "langgraph.json"
    graphs = {"echo": f"{ROOT}/tests/support/graphs/simple.py:echo"}
    config.write_text(json.dumps({"graphs": graphs, "http": {"app": app}}))
    (tmp_path / "app.py").write_text((HERE / "app.py").read_text())
    settings = security_settings(security_db, graphs_config=config)
    with pytest.raises(CustomAppError) as caught:
        create_app(settings)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
