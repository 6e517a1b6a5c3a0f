"""The built-in assistant on a machine that lacks something: no tesseract, a garbage OpenAI
key, an unreachable OpenAI endpoint. Each is said once at startup, shown in `/info`, and
named in the run's own output, instead of a silent wrong answer or an anonymous error."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from server.core.settings import ROOT, Settings
from server.http.app import create_app
from tests.support.openai_fake import FakeOpenAI
from tests.support.servers import create_database, drop_database, free_port, serve_in_loop

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """Serve the project's langgraph.json with these settings; yields an HTTP client on it."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        database = create_database()
        settings = Settings(
            environment="test",
            database_url=database,
            graphs_config=ROOT / "langgraph.json",
            embedded_data_dir=tmp_path,
            log_level="WARNING",
            rate_limit_enabled=False,
            seed_sample_corpus=False,
            **{"openai_api_key": None, "openai_base_url": None, **overrides},
        )
        try:
            async with (
                serve_in_loop(create_app(settings)) as url,
                httpx.AsyncClient(base_url=url, timeout=120) as http,
            ):
                yield http
        finally:
            drop_database(database)

    return start


def sign(text: str) -> str:
    image = Image.new("RGB", (900, 160), "white")
    ImageDraw.Draw(image).text((20, 50), text, fill="black", font=ImageFont.load_default(size=48))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def warnings(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.__dict__.get("event") == event]


async def wait_run(http: httpx.AsyncClient, content: object) -> dict[str, Any]:
    body = {
        "assistant_id": "assistant",
        "input": {"messages": [{"role": "user", "content": content}]},
    }
    response = await http.post("/runs/wait", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_without_tesseract_startup_info_and_the_answer_say_so(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="trellis"):
        async with serve(tesseract_cmd=str(Path("/nonexistent/bin/tesseract"))) as http:
            info = (await http.get("/info")).json()
            result = await wait_run(
                http,
                [
                    {"type": "text", "text": "What does this sign say?"},
                    {"type": "image_url", "image_url": {"url": sign("OPEN DAILY 9 TO 5")}},
                ],
            )
    [warning] = warnings(caplog, "ocr_unavailable")
    assert "/nonexistent/bin/tesseract" in warning
    assert "apt-get install tesseract-ocr" in warning
    assert info["trellis"]["capabilities"] == {"ocr": False}
    answer = result["answer"]
    assert "No text was found" not in answer
    assert "Text recognition (OCR) is unavailable on this server" in answer
    assert "apt-get install tesseract-ocr" in answer


async def test_with_tesseract_info_says_ocr_works(serve: Serve) -> None:
    async with serve() as http:
        info = (await http.get("/info")).json()
    assert info["trellis"]["capabilities"] == {"ocr": True}
    assert info["trellis"]["model"] == {"provider": "offline"}


async def test_info_keeps_the_official_keys_and_reports_what_is_configured(serve: Serve) -> None:
    async with serve(langsmith_tracing=True, langsmith_api_key="lsv2-not-a-real-key") as http:
        info = (await http.get("/info")).json()
    assert set(info) >= {"version", "langgraph_py_version", "flags", "host"}
    assert set(info["flags"]) == {
        "assistants",
        "crons",
        "langsmith",
        "langsmith_tracing_replicas",
        "langsmith_tracing_session_on_runs",
    }
    assert set(info["host"]) == {
        "kind",
        "project_id",
        "host_revision_id",
        "revision_id",
        "tenant_id",
    }
    assert info["flags"]["langsmith"] is True
    assert info["trellis"]["langsmith"] == {
        "tracing": True,
        "tracing_setting": True,
        "api_key": True,
        "endpoint_host": "api.smith.langchain.com",
    }
    assert info["trellis"]["redis"] == {"connected": True}
    assert "lsv2-not-a-real-key" not in str(info)


async def test_a_garbage_openai_key_is_named_at_startup_and_in_the_run_error(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeOpenAI(api_key="sk-the-right-one") as fake:
        with caplog.at_level(logging.WARNING, logger="trellis"):
            async with serve(openai_api_key="garbage", openai_base_url=fake.base_url) as http:
                result = await wait_run(http, "How does Trellis survive a crash?")
                info = (await http.get("/info")).json()
    problem = f"GET {fake.base_url}/models answered HTTP 401 Unauthorized"
    [warning] = warnings(caplog, "model_endpoint_check")
    assert warning.startswith(f"model endpoint check failed: {problem}")
    model = info["trellis"]["model"]
    assert model["provider"] == "openai"
    assert model["base_url_host"] == f"127.0.0.1:{fake.port}"
    assert model["endpoint_check"].startswith(problem)
    error = result["__error__"]
    assert error["error"] == "ModelUnavailable"
    assert error["message"].startswith(
        f"the model endpoint {fake.base_url} answered HTTP 401 Unauthorized"
    )
    assert "garbage" not in str(info) + warning


async def test_an_unreachable_openai_endpoint_is_named_at_startup_and_in_the_run_error(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with caplog.at_level(logging.WARNING, logger="trellis"):
        async with serve(
            openai_api_key="sk-anything", openai_base_url=closed, openai_deadline_seconds=5.0
        ) as http:
            result = await wait_run(http, "How does Trellis survive a crash?")
    [warning] = warnings(caplog, "model_endpoint_check")
    assert f"could not reach the model endpoint {closed}: ConnectError" in warning
    error = result["__error__"]
    assert error["message"].startswith(f"could not reach the model endpoint {closed}: ConnectError")
