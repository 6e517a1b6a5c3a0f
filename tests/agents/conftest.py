"""Fixtures for the agent node tests: fast embedder, in-memory Qdrant, installed toolbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from langgraph.runtime import Runtime

from agents.context import Context
from tests.agents.support import HashEmbedder, ScriptedProvider, index_docs, make_toolbox
from tools.retrieval import QdrantIndex
from tools.toolbox import Toolbox, install_toolbox, uninstall_toolbox


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def provider(embedder: HashEmbedder) -> ScriptedProvider:
    return ScriptedProvider(embedder)


@pytest.fixture
async def index(embedder: HashEmbedder) -> AsyncIterator[QdrantIndex]:
    qdrant = QdrantIndex(location=":memory:")
    await index_docs(qdrant, embedder)
    yield qdrant
    await qdrant.close()


@pytest.fixture
def toolbox(
    provider: ScriptedProvider, embedder: HashEmbedder, index: QdrantIndex
) -> Iterator[Toolbox]:
    box = make_toolbox(provider, embedder, index)
    install_toolbox(box)
    yield box
    uninstall_toolbox()


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def runtime(events: list[dict[str, Any]]) -> Callable[..., Runtime[Context]]:
    """Build a node runtime whose ``custom`` events land in ``events``."""

    def make(**knobs: Any) -> Runtime[Context]:
        return Runtime(context=Context(**knobs), stream_writer=events.append)

    return make
