"""The assistant graph end to end, offline: routing, confidence, revisions, human review, images."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph.state import CompiledStateGraph, StateGraph
from langgraph.types import Command

from agents.context import Context
from graphs.assistant import build, graph
from tests.agents.support import (
    HashEmbedder,
    ScriptedProvider,
    index_docs,
    make_toolbox,
    text_png_data_url,
)
from tests.support.openai_fake import FakeOpenAI, Reply
from tools.cache import CachedEmbedder, MemoryCache
from tools.embeddings import MiniLMEmbedder
from tools.models.offline_provider import OfflineProvider
from tools.models.openai_provider import OpenAIConfig, OpenAIProvider
from tools.retrieval import QdrantIndex, ingest_paths, sample_corpus_dir
from tools.toolbox import Toolbox, install_toolbox, uninstall_toolbox

UNRELATED = "What is the airspeed velocity of an unladen swallow?"


@pytest.fixture(scope="session")
def minilm() -> CachedEmbedder:
    # Cached as the default toolbox does: the critic re-embeds the drafted evidence.
    return CachedEmbedder(MiniLMEmbedder(), MemoryCache())


@pytest.fixture(scope="session")
async def sample_index(minilm: CachedEmbedder) -> AsyncIterator[QdrantIndex]:
    index = QdrantIndex(location=":memory:")
    await ingest_paths([sample_corpus_dir()], index=index, embedder=minilm, collection="test-docs")
    yield index
    await index.close()


@pytest.fixture
def offline(minilm: CachedEmbedder, sample_index: QdrantIndex) -> Iterator[Toolbox]:
    """The real offline stack: MiniLM, the sample corpus in Qdrant, the offline provider."""
    box = make_toolbox(OfflineProvider(minilm), minilm, sample_index)
    install_toolbox(box)
    yield box
    uninstall_toolbox()


@pytest.fixture
async def fast() -> AsyncIterator[Toolbox]:
    """A quick stack for control-flow tests: hashed embeddings, a scripted provider."""
    embedder = HashEmbedder()
    index = QdrantIndex(location=":memory:")
    await index_docs(index, embedder)
    box = make_toolbox(ScriptedProvider(embedder), embedder, index)
    install_toolbox(box)
    yield box
    uninstall_toolbox()
    await index.close()


def compiled() -> CompiledStateGraph[Any, Any, Any, Any]:
    return build().compile(checkpointer=InMemorySaver())


def thread() -> RunnableConfig:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_module_exports_wiring() -> None:
    assert isinstance(build(), StateGraph)
    assert graph.checkpointer is None
    assert set(graph.nodes) >= {"supervisor", "retriever", "vision", "critic", "human_review"}
    assert list(graph.get_input_jsonschema()["properties"]) == ["messages"]
    output = graph.get_output_jsonschema()["properties"]
    assert {"answer", "confidence", "confidence_components", "citations", "route"} <= set(output)


@pytest.mark.usefixtures("offline")
async def test_offline_question_streams_route_confidence_and_citations() -> None:
    app, config = compiled(), thread()
    nodes: list[str] = []
    custom: list[dict[str, Any]] = []
    async for mode, chunk in app.astream(
        ask("How does Trellis keep a run's checkpoints durable?"),
        config,
        stream_mode=["updates", "custom"],
        context=Context(collection="test-docs"),
    ):
        if mode == "updates":
            nodes.extend(chunk)
        else:
            custom.append(cast(dict[str, Any], chunk))

    assert nodes == ["supervisor", "retriever", "supervisor", "critic", "supervisor"]
    assert [(e["type"], e["node"]) for e in custom] == [
        ("route", "supervisor"),
        ("confidence", "retriever"),
        ("route", "supervisor"),
        ("confidence", "critic"),
        ("route", "supervisor"),
    ]
    assert all(e["provider"] == "offline" for e in custom)
    critic_event = custom[3]
    assert set(critic_event["components"]) == {"groundedness", "retrieval", "judge", "relevance"}
    assert 0.6 <= critic_event["score"] <= 1.0

    values = (await app.aget_state(config)).values
    assert values["answer"] == values["draft"]
    assert values["confidence"] == critic_event["score"]
    assert values["confidence_components"] == critic_event["components"]
    assert values["verdict"] == "accepted"
    corpus = {p.name for p in sample_corpus_dir().iterdir()}
    assert values["citations"]
    assert {c["source"] for c in values["citations"]} <= corpus
    for citation in values["citations"]:
        assert f"[{citation['marker']}]" in values["answer"]
    assert [r["decision"] for r in values["route"]] == ["retriever", "critic", "finish"]
    assert values["prompts"]["supervisor"] == 1
    assert isinstance(values["messages"][-1], AIMessage)
    assert values["messages"][-1].content == values["answer"]

    serde = JsonPlusSerializer()
    assert serde.loads_typed(serde.dumps_typed(values)) == values


@pytest.mark.usefixtures("offline")
async def test_the_readmes_question_gets_the_definition_not_a_heading_that_restates_it() -> None:
    # The README's SDK example. It was answered "How the confidence score is computed."
    # (a section heading) with confidence 0.90.
    values = await compiled().ainvoke(
        ask("What is a confidence score?"), thread(), context=Context(collection="test-docs")
    )
    answer = values["answer"]
    assert not answer.startswith("How the confidence score is computed")
    assert "number between 0 and 1" in answer
    assert "```" not in answer  # code blocks are not quoted as sentences
    assert values["confidence_components"]["relevance"] == 1.0
    assert values["verdict"] == "accepted"


async def test_an_off_topic_draft_goes_to_review_not_to_the_answer(fast: Toolbox) -> None:
    # Quoted word for word from the evidence (fully grounded), about another subject.
    assert isinstance(fast.provider, ScriptedProvider)
    fast.provider.drafts.append("Redis carries the event streams of running runs [1].")
    app, config = compiled(), thread()
    context = Context(human_review=True, max_revisions=0)
    await app.ainvoke(ask("Where are the checkpoints of a thread kept?"), config, context=context)
    snapshot = await app.aget_state(config)

    assert snapshot.next == ("human_review",)
    [pending] = snapshot.interrupts
    assert pending.value["components"]["relevance"] == 0.0
    assert pending.value["confidence"] == 0.0
    assert "answer" not in snapshot.values or not snapshot.values["answer"]


@pytest.mark.usefixtures("offline")
async def test_the_answer_message_surfaces_in_messages_mode() -> None:
    app = compiled()
    streamed: list[Any] = [
        message
        async for message, _ in app.astream(
            ask("Which store holds document vectors?"),
            thread(),
            stream_mode="messages",
            context=Context(collection="test-docs"),
        )
    ]
    assert [m.type for m in streamed] == ["ai"]
    assert "[" in str(streamed[0].content)


@pytest.mark.usefixtures("offline")
async def test_image_question_goes_through_vision_and_quotes_the_ocr_text() -> None:
    app, config = compiled(), thread()
    content = [
        {"type": "text", "text": "What does the text in this image say?"},
        {"type": "image_url", "image_url": {"url": text_png_data_url("SHIP FRIDAY 42")}},
    ]
    nodes = [
        node
        async for chunk in app.astream(
            {"messages": [{"role": "user", "content": content}]},
            config,
            stream_mode="updates",
            context=Context(collection="test-docs"),
        )
        for node in chunk
    ]
    values = (await app.aget_state(config)).values
    assert nodes[:4] == ["supervisor", "vision", "supervisor", "critic"]
    assert values["image_findings"]["ok"] is True
    assert "SHIP FRIDAY 42" in values["image_findings"]["ocr_text"]
    assert "SHIP FRIDAY 42" in values["answer"]
    assert values["draft_source"] == "vision"
    assert values["confidence"] is not None


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("url", ["http://0177.0.0.1/a.png", "http://0x7f.1/a.png"])
async def test_a_refused_image_url_is_reported_and_the_run_goes_on(url: str) -> None:
    app, config = compiled(), thread()
    content = [
        {"type": "text", "text": "What does the text in this image say?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    await app.ainvoke(
        {"messages": [{"role": "user", "content": content}]},
        config,
        context=Context(collection="test-docs"),
    )
    state = await app.aget_state(config)
    values = state.values
    assert not state.next  # the run finished
    assert values["image_findings"]["ok"] is False
    assert values["image_findings"]["message"].startswith("The attached image could not be used")
    assert any(m.content == values["image_findings"]["message"] for m in values["messages"]), (
        "the image's error is in the conversation"
    )
    assert values["answer"]


@pytest.mark.usefixtures("offline")
async def test_a_second_question_starts_a_fresh_turn() -> None:
    app, config = compiled(), thread()
    context = Context(collection="test-docs")
    await app.ainvoke(ask("Which store holds document vectors?"), config, context=context)
    first = (await app.aget_state(config)).values
    await app.ainvoke(ask("How are images checked before OCR?"), config, context=context)
    second = (await app.aget_state(config)).values

    assert second["turn"] != first["turn"]
    assert [r["decision"] for r in second["route"]] == ["retriever", "critic", "finish"]
    assert second["answer"] != first["answer"]
    assert [m.type for m in second["messages"]] == ["human", "ai", "human", "ai"]


async def test_the_revise_loop_stops_at_max_revisions(fast: Toolbox) -> None:
    app, config = compiled(), thread()
    context = Context(confidence_threshold=0.99, max_revisions=2)
    await app.ainvoke(ask(UNRELATED), config, context=context)
    values = (await app.aget_state(config)).values

    decisions = [r["decision"] for r in values["route"]]
    assert decisions == ["retriever", "critic"] * 3 + ["finish"]
    assert values["revisions"] == 2
    assert values["verdict"] == "accepted"
    assert values["confidence"] < 0.99
    assert values["answer"] == values["draft"]
    tops = [c[1]["passages"] for c in fast.provider.calls if c[0] == "draft_answer"]  # type: ignore[attr-defined]
    assert len(tops) == 3


async def interrupted(app: CompiledStateGraph[Any, Any, Any, Any], config: RunnableConfig) -> Any:
    context = Context(human_review=True, max_revisions=0, confidence_threshold=0.99)
    await app.ainvoke(ask(UNRELATED), config, context=context)
    snapshot = await app.aget_state(config)
    assert snapshot.next == ("human_review",)
    [pending] = snapshot.interrupts
    return pending.value


@pytest.mark.usefixtures("fast")
async def test_low_confidence_interrupts_for_review() -> None:
    app, config = compiled(), thread()
    payload = await interrupted(app, config)

    assert payload["type"] == "review"
    assert payload["confidence"] < 0.99
    assert set(payload["components"]) == {"groundedness", "retrieval", "judge", "relevance"}
    assert len(payload["reasons"]) == 4
    assert payload["draft"]
    assert "approve" in payload["instructions"]
    assert (await app.aget_state(config)).values["verdict"] == "review"


@pytest.mark.usefixtures("fast")
@pytest.mark.parametrize(
    ("resume", "verdict", "expect"),
    [
        ({"decision": "approve"}, "approved", "draft"),
        (
            {"decision": "edit", "value": "Nobody knows.", "comment": None},
            "edited",
            "Nobody knows.",
        ),
        ({"decision": "reject", "comment": "off topic"}, "rejected", "rejected"),
    ],
)
async def test_each_human_answer_resumes(resume: dict[str, Any], verdict: str, expect: str) -> None:
    app, config = compiled(), thread()
    payload = await interrupted(app, config)
    custom = [
        chunk
        async for chunk in app.astream(
            Command(resume=resume),
            config,
            stream_mode="custom",
            context=Context(human_review=True, max_revisions=0, confidence_threshold=0.99),
        )
    ]
    snapshot = await app.aget_state(config)
    values = snapshot.values

    assert snapshot.next == ()
    assert values["verdict"] == verdict
    assert values["review"]["decision"] == resume["decision"]
    assert values["route"][-1]["decision"] == "finish"
    assert custom[0] == {"type": "review", "node": "human_review", "decision": resume["decision"]}
    if expect == "draft":
        assert values["answer"] == payload["draft"]
    elif expect == "rejected":
        assert "rejected" in values["answer"]
        assert "off topic" in values["answer"]
    else:
        assert values["answer"] == expect
    assert values["messages"][-1].content == values["answer"]
    assert isinstance(values["messages"][0], HumanMessage)


async def test_openai_provider_drives_the_graph_and_streams_the_answer_once(fast: Toolbox) -> None:
    async with FakeOpenAI() as fake:
        config = OpenAIConfig(
            api_key="test", base_url=fake.base_url, max_retries=0, fallback_model=None
        )
        install_toolbox(replace(fast, provider=OpenAIProvider(config)))
        fake.script(
            Reply.structured({"query": "checkpoints postgres", "keywords": ["checkpoints"]}),
            Reply.text("Postgres holds the checkpoints of every thread [1]."),
            Reply.structured({"score": 0.9, "reason": "supported"}),
        )
        app, run = compiled(), thread()
        tokens: list[str] = []
        finals: list[Any] = []
        custom: list[dict[str, Any]] = []
        async for mode, chunk in app.astream(
            ask("Where are the checkpoints of a thread kept?"),
            run,
            stream_mode=["messages", "custom"],
        ):
            if mode == "custom":
                custom.append(cast(dict[str, Any], chunk))
                continue
            message, _ = cast(tuple[Any, dict[str, Any]], chunk)
            (tokens if isinstance(message, AIMessageChunk) else finals).append(message)

        values = (await app.aget_state(run)).values
        assert "".join(t.text for t in tokens) == values["answer"]
        assert finals == []  # the final answer message reuses the streamed id: no duplicate
        assert values["messages"][-1].id == values["draft_message_id"]
        assert values["citations"][0]["source"] == "postgres.md"
        assert values["confidence_components"]["judge"] == 0.9
        assert {e["provider"] for e in custom} == {"openai"}
        assert fake.models_called() == ["gpt-4o-mini"] * 3
        assert fake.pending == 0
