"""The built-in assistant end to end: served by Trellis from the project's langgraph.json,
on Postgres, driven by the official SDK, with the offline provider."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from PIL import Image, ImageDraw, ImageFont

from server.http.app import create_app
from tests.support.servers import builtin_settings, create_database, drop_database, serve_in_loop
from tools.retrieval import sample_corpus_dir


@pytest.fixture(scope="module")
async def assistant_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    database = create_database()
    settings = builtin_settings(database, tmp_path_factory.mktemp("trellis-data"))
    async with serve_in_loop(create_app(settings)) as url:
        yield url
    drop_database(database)


def corpus() -> list[dict[str, str]]:
    return [
        {"source": path.name, "text": path.read_text(encoding="utf-8")}
        for path in sorted(sample_corpus_dir().glob("*.md"))
    ]


async def test_ingest_is_idempotent(assistant_url: str) -> None:
    async with httpx.AsyncClient(base_url=assistant_url, timeout=120) as http:
        first = (await http.post("/documents/ingest", json={"documents": corpus()})).json()
        second = (await http.post("/documents/ingest", json={"documents": corpus()})).json()
        info = (await http.get("/info")).json()
    assert first["documents"] == len(corpus())
    assert first["chunks"] == second["chunks"] > 0
    assert first["total_chunks"] == second["total_chunks"]
    assert info["trellis"]["model_provider"] == "offline"


async def test_question_streams_route_and_confidence(assistant_url: str) -> None:
    client = get_client(url=assistant_url, api_key=None)
    thread = await client.threads.create()
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "assistant",
            input={"messages": [{"role": "user", "content": "How does Trellis survive a crash?"}]},
            stream_mode=["updates", "custom"],
        )
    ]
    nodes = [next(iter(p.data)) for p in parts if p.event == "updates"]
    assert nodes[:3] == ["supervisor", "retriever", "supervisor"]
    assert "critic" in nodes
    scores = [p.data for p in parts if p.event == "custom" and p.data.get("type") == "confidence"]
    critic = [s for s in scores if s["node"] == "critic"]
    assert critic
    assert 0.0 <= critic[-1]["score"] <= 1.0
    assert set(critic[-1]["components"]) >= {"groundedness", "retrieval", "judge"}
    assert all(s.get("provider") == "offline" for s in scores)

    values: dict[str, Any] = (await client.threads.get_state(thread["thread_id"]))["values"]
    sources = {path.name for path in sample_corpus_dir().glob("*.md")}
    assert values["answer"]
    assert values["citations"]
    assert {c["source"] for c in values["citations"]} <= sources
    assert values["confidence"] == critic[-1]["score"]
    assert values["route"][0]["node"] == "supervisor"
    await client.http.client.aclose()


async def test_the_readmes_sdk_question_gets_a_confident_answer_only_when_it_answers(
    assistant_url: str,
) -> None:
    client = get_client(url=assistant_url, api_key=None)
    thread = await client.threads.create()
    question = {"role": "user", "content": "What is a confidence score?"}  # as in README.md
    await client.runs.wait(thread["thread_id"], "assistant", input={"messages": [question]})
    values: dict[str, Any] = (await client.threads.get_state(thread["thread_id"]))["values"]
    # It was "How the confidence score is computed." (a heading) with confidence 0.90.
    assert not values["answer"].startswith("How the confidence score is computed")
    assert "between 0 and 1" in values["answer"]
    assert values["confidence_components"]["relevance"] >= 0.5
    assert values["confidence"] >= 0.6

    off_topic = {"role": "user", "content": "What is the capital city of France?"}
    await client.runs.wait(thread["thread_id"], "assistant", input={"messages": [off_topic]})
    values = (await client.threads.get_state(thread["thread_id"]))["values"]
    assert values["confidence_components"]["relevance"] == 0.0
    assert values["confidence"] < 0.3
    await client.http.client.aclose()


def sign(text: str) -> str:
    image = Image.new("RGB", (640, 160), "white")
    ImageDraw.Draw(image).text((20, 50), text, fill="black", font=ImageFont.load_default(size=48))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_image_question_goes_through_vision(assistant_url: str) -> None:
    client = get_client(url=assistant_url, api_key=None)
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What does this sign say?"},
            {"type": "image_url", "image_url": {"url": sign("TRELLIS 42")}},
        ],
    }
    result = await client.runs.wait(None, "assistant", input={"messages": [message]})
    assert isinstance(result, dict)
    assert "vision" in [r["node"] for r in result["route"]] + [
        r.get("decision") for r in result["route"]
    ]
    assert "TRELLIS 42" in result["answer"]
    await client.http.client.aclose()


def test_sample_corpus_is_shipped() -> None:
    assert len(list(Path(sample_corpus_dir()).glob("*.md"))) >= 5
