"""The one translation of `graph.astream(...)` output into LangGraph Server wire events.

`stream_run` drives a graph with the LangGraph stream modes a request needs and
yields `(event_name, payload)` pairs as the official server names them:
`values`, `updates`, `custom`, `debug`, `tasks`, `checkpoints`, `events`,
`messages` (for `messages-tuple`), and `messages/metadata`,
`messages/partial`, `messages/complete` (for `messages`). Parts from
subgraphs are named `mode|namespace`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

from langchain_core.messages import BaseMessage, BaseMessageChunk
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import RunControl
from langgraph.types import All, Durability
from langgraph.types import StreamMode as GraphStreamMode

from server.core.schemas import StreamMode
from server.core.types import Json
from server.graph_host.registry import AnyGraph

Part = tuple[str, object]
"""A wire event: its name, and its payload (encoded as JSON by the caller)."""


def _lg_modes(modes: Sequence[StreamMode]) -> list[GraphStreamMode]:
    out: list[GraphStreamMode] = []
    for mode in modes:
        lg = "messages" if mode in ("messages", "messages-tuple") else mode
        # `events` is astream_events; `lifecycle` the protocol's own (synthesized) events.
        if lg not in ("events", "lifecycle") and lg not in out:
            out.append(cast(GraphStreamMode, lg))
    return out


class _MessageAccumulator:
    """Turns LangGraph `messages` parts into the official `messages/*` events."""

    def __init__(self) -> None:
        self._seen: dict[str, BaseMessageChunk | BaseMessage] = {}

    def feed(self, message: BaseMessage, metadata: Mapping[str, object]) -> list[Part]:
        events: list[Part] = []
        msg_id = message.id or ""
        if msg_id not in self._seen:
            events.append(("messages/metadata", {msg_id: {"metadata": metadata}}))
        if isinstance(message, BaseMessageChunk):
            previous = self._seen.get(msg_id)
            merged = previous + message if isinstance(previous, BaseMessageChunk) else message
            self._seen[msg_id] = merged
            events.append(("messages/partial", [message_chunk_to_message(merged)]))
        else:
            self._seen[msg_id] = message
            events.append(("messages/complete", [message]))
        return events


def _event_name(mode: str, namespace: Sequence[str]) -> str:
    return "|".join([mode, *namespace]) if namespace else mode


def _debug_payload(data: object) -> object:
    """Add `checkpoint`/`parent_checkpoint` refs to debug checkpoint payloads, like the official."""
    if isinstance(data, dict) and data.get("type") == "checkpoint":
        payload = data.get("payload")
        if isinstance(payload, dict) and "checkpoint" not in payload:
            payload = dict(payload)
            for key, source in (("checkpoint", "config"), ("parent_checkpoint", "parent_config")):
                config = payload.get(source)
                conf = config.get("configurable", {}) if isinstance(config, dict) else None
                payload[key] = (
                    {
                        "checkpoint_id": conf.get("checkpoint_id"),
                        "thread_id": conf.get("thread_id"),
                        "checkpoint_ns": conf.get("checkpoint_ns", ""),
                    }
                    if conf
                    else None
                )
            return {**data, "payload": payload}
    return data


class PartTranslator:
    """Stateful translation of `(namespace, mode, data)` parts for one run."""

    def __init__(self, modes: Sequence[StreamMode]) -> None:
        self.tuples = "messages-tuple" in modes
        self.full_messages = "messages" in modes
        self._messages = _MessageAccumulator()

    def translate(self, namespace: Sequence[str], mode: str, data: object) -> list[Part]:
        """Wire events for one LangGraph stream part."""
        if mode == "messages":
            message, metadata = cast(tuple[BaseMessage, Mapping[str, object]], data)
            events: list[Part] = []
            if self.tuples:
                events.append((_event_name("messages", namespace), [message, metadata]))
            if self.full_messages:
                for name, payload in self._messages.feed(message, metadata):
                    events.append((_event_name(name, namespace), payload))
            return events
        if mode == "debug":
            data = _debug_payload(data)
        return [(_event_name(mode, namespace), data)]


class FinalCheckpoint:
    """The last checkpoint a run's graph wrote at the root, as the graph held it: what a run
    that finished is recorded with, without reading the state back from the saver."""

    def __init__(self) -> None:
        self.checkpoint_id: str | None = None
        self.values: object = None
        self.next: list[str] | None = None
        """The tasks left to run from it (None: no checkpoint was seen)."""

    def see(self, payload: object) -> None:
        """A root `checkpoints` stream part."""
        if not isinstance(payload, Mapping):
            return
        config = payload.get("config")
        conf = config.get("configurable", {}) if isinstance(config, Mapping) else {}
        checkpoint_id = conf.get("checkpoint_id") if isinstance(conf, Mapping) else None
        if not isinstance(checkpoint_id, str):
            return
        self.checkpoint_id = checkpoint_id
        self.values = payload.get("values")
        self.next = list(payload.get("next") or [])


async def stream_run(
    graph: AnyGraph,
    graph_input: object,
    config: RunnableConfig,
    *,
    modes: Sequence[StreamMode],
    subgraphs: bool,
    context: Json | None,
    durability: Durability,
    interrupt_before: All | Sequence[str] | None = None,
    interrupt_after: All | Sequence[str] | None = None,
    control: RunControl | None = None,
    final: FinalCheckpoint | None = None,
) -> AsyncIterator[Part]:
    """Run `graph` and yield wire events in order; exceptions from the graph propagate.

    `final` (not with the `events` mode) is told of each root checkpoint the graph writes,
    from a `checkpoints` stream the client sees only if it asked for it."""
    translator = PartTranslator(modes)
    lg_modes = _lg_modes(modes)
    if "events" not in modes:
        hidden = final is not None and "checkpoints" not in lg_modes
        if hidden:
            lg_modes.append("checkpoints")
        async for namespace, mode, data in graph.astream(
            graph_input,
            config,
            stream_mode=lg_modes,
            subgraphs=True,
            context=context,
            durability=durability,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            control=control,
        ):
            if mode == "checkpoints" and final is not None and not namespace:
                final.see(data)
            if (namespace and not subgraphs) or (hidden and mode == "checkpoints"):
                continue
            for part in translator.translate(namespace, mode, data):
                yield part
        return
    root_run_id: str | None = None
    async for event in graph.astream_events(
        graph_input,
        config,
        version="v2",
        stream_mode=lg_modes,
        subgraphs=True,
        context=context,
        durability=durability,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        control=control,
    ):
        if root_run_id is None:
            root_run_id = event["run_id"]
        if event["event"] == "on_chain_stream" and event["run_id"] == root_run_id:
            namespace, mode, data = event["data"]["chunk"]
            if namespace and not subgraphs:
                continue
            for part in translator.translate(namespace, mode, data):
                yield part
        yield "events", event
