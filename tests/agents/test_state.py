"""State storage: flat checkpoint growth with the DeltaChannel, and serializer round trips."""

from __future__ import annotations

import itertools
import os
import statistics
import uuid
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from agents.state import State

STEPS = 200


class DefaultState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def kilobyte() -> str:
    return os.urandom(512).hex()  # incompressible, like real text after encoding


async def reply(state: Any) -> dict[str, Any]:
    return {"messages": [AIMessage(content=kilobyte(), id=str(uuid.uuid4()))]}


def stored_bytes(saver: InMemorySaver) -> int:
    total = 0
    for namespaces in saver.storage.values():
        for checkpoints in namespaces.values():
            for checkpoint, metadata, _ in checkpoints.values():
                total += len(checkpoint[1]) + len(metadata[1])
    total += sum(len(blob[1]) for blob in saver.blobs.values())
    for writes in saver.writes.values():
        total += sum(len(value[1]) for _, _, value, _ in writes.values())
    return total


async def growth_per_step(schema: type[Any]) -> tuple[list[int], InMemorySaver]:
    builder = StateGraph(schema)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    saver = InMemorySaver()
    graph = builder.compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": "long"}}
    sizes = [0]
    for _ in range(STEPS):
        human = HumanMessage(content=kilobyte(), id=str(uuid.uuid4()))
        await graph.ainvoke({"messages": [human]}, config)
        sizes.append(stored_bytes(saver))
    return [b - a for a, b in itertools.pairwise(sizes)], saver


async def test_checkpoint_bytes_per_step_stay_flat() -> None:
    delta, saver = await growth_per_step(State)
    default, _ = await growth_per_step(DefaultState)

    # Medians skip the periodic full snapshot of the DeltaChannel (every 100 updates).
    early, late = statistics.median(delta[10:30]), statistics.median(delta[180:200])
    default_early, default_late = (
        statistics.median(default[10:30]),
        statistics.median(default[180:200]),
    )
    print(
        f"\nbytes per step, step 20 vs step 190: delta {early:.0f} -> {late:.0f}; "
        f"default {default_early:.0f} -> {default_late:.0f}; "
        f"totals after {STEPS} steps: delta {sum(delta)} B, default {sum(default)} B"
    )
    assert late < early * 1.2
    assert default_late > default_early * 5
    assert sum(delta) * 5 < sum(default)

    # Flat storage does not lose anything: the whole conversation reads back in order.
    builder = StateGraph(State)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    graph = builder.compile(checkpointer=saver)
    snapshot = await graph.aget_state({"configurable": {"thread_id": "long"}})
    messages = snapshot.values["messages"]
    assert len(messages) == 2 * STEPS
    assert [m.type for m in messages[:4]] == ["human", "ai", "human", "ai"]


def test_full_state_round_trips_through_the_postgres_serializer() -> None:
    state: State = {
        "messages": [
            HumanMessage(
                content=[
                    {"type": "text", "text": "What does it say?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
                id="h1",
            ),
            AIMessage(content="It says hello [1].", id="a1"),
            ToolMessage(content="x", tool_call_id="t1", id="t1"),
        ],
        "turn": "h1",
        "route": [
            {
                "node": "supervisor",
                "decision": "retriever",
                "reason": "r",
                "prompt": "supervisor",
                "prompt_version": 1,
                "provider": "offline",
            }
        ],
        "question": "What does it say?",
        "query": "say",
        "retrieval": {
            "query": "say",
            "collection": "documents",
            "top_k": 4,
            "strength": 0.5,
            "top_score": 0.6,
            "hits": 1,
        },
        "passages": [
            {"document_id": "d", "chunk": 0, "text": "hello", "score": 0.6, "source": "a.md"}
        ],
        "citations": [
            {"marker": 1, "document_id": "d", "chunk": 0, "score": 0.6, "source": "a.md"}
        ],
        "draft": "It says hello [1].",
        "draft_source": "retriever",
        "draft_message_id": "a1",
        "prompts": {"supervisor": 1},
        "image_findings": {
            "ok": True,
            "message": "m",
            "ocr_text": "hello",
            "ocr_confidence": None,
            "facts": {"width": 10, "dominant_colours": [{"hex": "#ffffff", "share": 1.0}]},
        },
        "confidence": 0.8,
        "confidence_components": {"groundedness": 1.0, "retrieval": 0.6, "judge": 0.6},
        "confidence_reasons": ["a"],
        "verdict": "edited",
        "revisions": 1,
        "review": {"decision": "edit", "value": "Hello.", "comment": None},
        "answer": "Hello.",
    }
    serde = JsonPlusSerializer()
    for key, value in state.items():
        assert serde.loads_typed(serde.dumps_typed(value)) == value, key
