"""The thread-centric event streaming protocol (langgraph-api's "v2" streams) over a
thread's runs: what `client.threads.stream(...)` of langgraph-sdk speaks.

Three parts, each mirroring langgraph-api 0.16 (`langgraph_api/event_streaming/`):

* `EventFilter`: an `EventStreamRequest` (`channels`, `namespaces`, `depth`, `since`)
  and the matching of events against it (`session.py`, `_matches_subscription`).
* `ProtocolProjector`: the run events of a thread (`server.runs.thread_stream`) as
  protocol events `{"type": "event", "event_id", "seq", "method", "params":
  {"namespace", "timestamp", "data", "node"?}}`: a root `lifecycle` `running` when a
  run starts, then its `values`, `updates`, `custom`, `tasks`, interrupts as
  `input.requested` (+ `lifecycle` `interrupted`), and a terminal `lifecycle`
  (`completed` / `failed` with its error / `interrupted`) when it ends. `seq` counts
  every event of the connection from the thread's first retained run, so two
  connections number the same history alike and `since` resumes across them.
* `ThreadCommands`: `run.start`, `input.respond` and the subscription commands, answered
  with `{"type": "success" | "error", "id", "result" | "error"+"message", "meta"?}`
  (`service.py`, `ThreadRunManager.handle_command`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from langchain_core.language_models._compat_bridge import (
    CompatBlock,
    _accumulate,
    _accumulate_usage,
    _build_message_finish,
    _build_message_start,
    _finalize_and_build_finish,
    _iter_protocol_blocks,
    _start_skeleton,
    _to_content_delta,
    message_to_events,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
)
from langchain_core.utils._merge import merge_dicts
from langchain_protocol.protocol import UsageInfo
from pydantic import ValidationError

from server.core.errors import InvalidRequest, NotFound, TrellisError
from server.core.ids import require_uuid
from server.core.schemas import RunCommand, RunCreate
from server.core.types import Json, MultitaskStrategy
from server.db import run_rows, thread_rows
from server.runs.events import END
from server.runs.manager import V2_MARKER, RunManager
from server.runs.thread_stream import ThreadEvent

SUPPORTED_CHANNELS = frozenset(
    {
        "values",
        "updates",
        "checkpoints",
        "messages",
        "tools",
        "custom",
        "lifecycle",
        "input",
        "tasks",
    }
)
"""The protocol's channels; `custom:<name>` selects one named custom stream."""

RUN_STREAM_MODES = [
    "values",
    "updates",
    "messages-tuple",
    "custom",
    "tasks",
    "checkpoints",
    "tools",
]
"""The stream modes a `run.start` run publishes: what the projector turns into events."""

KNOWN_COMMANDS = frozenset(
    {
        "run.start",
        "input.respond",
        "agent.getTree",
        "subscription.subscribe",
        "subscription.unsubscribe",
        "subscription.reconnect",
    }
)

_STRATEGIES: frozenset[MultitaskStrategy] = frozenset(
    {"reject", "interrupt", "rollback", "enqueue"}
)
_LIFECYCLE = {"success": "completed", "error": "failed", "timeout": "failed"}


def supported_channel(value: object) -> bool:
    """Whether `value` names a protocol channel."""
    if not isinstance(value, str):
        return False
    return value in SUPPORTED_CHANNELS or (value.startswith("custom:") and len(value) > 7)


def _namespaces(value: object) -> list[list[str]] | None:
    if not isinstance(value, list):
        return None
    kept = [ns for ns in value if isinstance(ns, list) and all(isinstance(s, str) for s in ns)]
    return kept or None


def _count(value: object) -> int | None:
    """A non-negative int; booleans are not numbers here (`true` is not `1`)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _prefix_match(namespace: Sequence[str], prefix: Sequence[str]) -> bool:
    """`prefix` starts `namespace`; a prefix segment without `:` also matches a segment
    that only adds a `:<task id>` suffix."""
    if len(prefix) > len(namespace):
        return False
    for segment, candidate in zip(prefix, namespace, strict=False):
        if candidate != segment and (":" in segment or candidate.split(":")[0] != segment):
            return False
    return True


@dataclass
class EventFilter:
    """What one subscription (an SSE connection, a websocket `subscription.subscribe`)
    wants: its channels, namespace prefixes (with how much deeper), and the `seq` it has."""

    channels: frozenset[str]
    namespaces: list[list[str]] | None = None
    depth: int | None = None
    since: int | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def parse(cls, body: object) -> EventFilter:
        """An `EventStreamRequest` body; `InvalidRequest` with the official wording."""
        channels = body.get("channels") if isinstance(body, dict) else None
        if not isinstance(channels, list) or not channels:
            raise InvalidRequest("channels is required and must be a non-empty array")
        bad = [c if isinstance(c, str) else repr(c) for c in channels if not supported_channel(c)]
        if bad:
            raise InvalidRequest(
                "channels contains unsupported entries: "
                + ", ".join(bad[:5])
                + ". Allowed: values, updates, messages, tools, custom, "
                "lifecycle, input, tasks, or any `custom:<name>`."
            )
        assert isinstance(body, dict)
        return cls(
            channels=frozenset(channels),
            namespaces=_namespaces(body.get("namespaces")),
            depth=_count(body.get("depth")),
            since=_count(body.get("since")),
        )

    def matches(self, event: Json) -> bool:
        """Whether the subscription wants `event` (its `seq` is after `since`)."""
        seq = event.get("seq", 0)
        if self.since is not None and isinstance(seq, int) and seq <= self.since:
            return False
        method = event.get("method", "")
        channel = "input" if method == "input.requested" else method
        params = event.get("params") or {}
        if channel == "custom":
            data = params.get("data")
            name = data.get("name") if isinstance(data, dict) else None
            if "custom" not in self.channels and (
                name is None or f"custom:{name}" not in self.channels
            ):
                return False
        elif channel not in self.channels:
            return False
        if not self.namespaces:
            return True
        namespace = params.get("namespace") or []
        return any(
            _prefix_match(namespace, prefix)
            and (self.depth is None or len(namespace) - len(prefix) <= self.depth)
            for prefix in self.namespaces
        )


def _interrupts(value: object) -> list[Json]:
    """The `input.requested` data of the interrupts in a values/updates payload."""
    items = value.get("__interrupt__") if isinstance(value, dict) else value
    out: list[Json] = []
    for entry in items if isinstance(items, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            request: Json = {"interrupt_id": entry["id"]}
            if "value" in entry:
                request["payload"] = entry["value"]
            out.append(request)
    return out


def _without_interrupts(value: object) -> object:
    if isinstance(value, dict) and "__interrupt__" in value:
        return {k: v for k, v in value.items() if k != "__interrupt__"}
    return value


class ProtocolProjector:
    """Turns one connection's thread events into protocol events, numbering them."""

    def __init__(self) -> None:
        self.seq = 0
        """The `seq` of the last event made."""
        self._run_id: str | None = None
        self._graph = "root"
        self._terminal = False
        self._interrupts: set[str] = set()
        self._source: tuple[str, int] = ("", 0)
        self._open: dict[str, _OpenMessage] = {}
        """Messages streaming now, by id."""
        self._closed: set[str] = set()
        self._checkpoints: set[tuple[str, str]] = set()
        """Checkpoints sent, by namespace key and id."""

    def feed(self, item: ThreadEvent) -> list[Json]:
        """The protocol events for one run event."""
        run, event = item
        out: list[Json] = []
        if run.run_id != self._run_id:
            self._run_id = run.run_id
            self._graph = run.graph_id or run.assistant_id
            self._terminal = False
            self._interrupts = set()
            self._open = {}
            self._closed = set()
            self._checkpoints = set()
            out.append(self._lifecycle("running"))
        self._source = (f"{run.run_id}:{event.id}", 0)
        name = event.event
        if name == "metadata":
            return out
        if name == END:
            for message_id in list(self._open):
                out.extend(self._finish_message(message_id))
            if not self._terminal:
                data = _loads(event.data)
                status = data.get("status") if isinstance(data, dict) else None
                self._terminal = True
                out.append(self._lifecycle(_LIFECYCLE.get(str(status), "interrupted")))
            return out
        if name == "error":
            data = _loads(event.data)
            message = data.get("message", str(data)) if isinstance(data, dict) else str(data)
            self._terminal = True
            out.append(self._lifecycle("failed", error=message))
            return out
        method, *namespace = name.split("|")
        data = _loads(event.data)
        if method == "values":
            out.extend(self._input_requested(namespace, _interrupts(data)))
            cleaned = _without_interrupts(data)
            if cleaned not in (None, {}, []):
                out.append(self._event("values", namespace, cleaned))
        elif method == "updates":
            node: str | None = None
            values: object = data
            if isinstance(data, dict) and len(data) == 1:
                node, values = next(iter(data.items()))
            if node == "__interrupt__":
                out.extend(self._input_requested(namespace, _interrupts(values)))
                return out
            if not isinstance(values, dict):
                values = {"value": values}
            cleaned = _without_interrupts(values)
            if cleaned not in (None, {}):
                out.append(self._event("updates", namespace, cleaned, node=node))
        elif method == "messages":
            if isinstance(data, list) and data and isinstance(data[0], dict):
                out.extend(self._message(namespace, data[0]))
        elif method == "custom":
            out.append(self._event("custom", namespace, {"payload": data}))
        elif method == "tasks":
            out.append(self._event("tasks", namespace, data))
        elif method == "checkpoints":
            out.extend(self._checkpoint(namespace, data))
        elif method == "tools" and isinstance(data, dict):
            raw_node = data.pop("__node", None)
            node = raw_node if isinstance(raw_node, str) and raw_node else None
            out.append(self._event("tools", namespace, data, node=node))
            out.extend(self._tool_message(namespace, data))
        return out

    def _message(self, namespace: list[str], raw: Json) -> list[Json]:
        """A `messages` part (a message chunk, or a whole message) as the protocol's
        `message-start`, `content-block-*` and `message-finish` events, built by
        langchain-core's bridge (`chunks_to_events` for chunks, `message_to_events` for a
        whole message) as the official v2 stream does: text, reasoning and tool-call blocks.
        Tool results are not messages here: they come on the `tools` channel, mirrored
        (`_tool_message`)."""
        if raw.get("type") in ("tool", "ToolMessageChunk"):
            return []
        message = _message_of(raw)
        if message is None or not message.id or message.id in self._closed:
            return []
        message_id = message.id
        if not isinstance(message, AIMessageChunk):
            if message_id in self._open:  # the whole message after its chunks: close them
                return self._finish_message(message_id)
            self._closed.add(message_id)
            return [
                self._event("messages", namespace, dict(data))
                for data in message_to_events(message)
            ]
        out: list[Json] = []
        state = self._open.get(message_id)
        if state is None:
            state = self._open[message_id] = _OpenMessage(namespace)
            out.append(
                self._event("messages", namespace, dict(_build_message_start(message, None)))
            )
        if message.response_metadata:
            state.response_metadata.update(message.response_metadata)
        if message.additional_kwargs:
            state.additional_kwargs = merge_dicts(
                state.additional_kwargs, message.additional_kwargs
            )
        for key, block in _iter_protocol_blocks(message):
            if key not in state.blocks:
                index = len(state.blocks)
                state.blocks[key] = (index, dict(block))
                start = {"event": "content-block-start", "index": index}
                start["content"] = _start_skeleton(block)
                out.append(self._event("messages", namespace, start))
            else:
                index, existing = state.blocks[key]
                state.blocks[key] = (index, _accumulate(existing, block))
            delta = _to_content_delta(block)
            if delta is not None:
                data = {"event": "content-block-delta", "index": index, "delta": delta}
                out.append(self._event("messages", namespace, data))
        if message.usage_metadata:
            state.usage = _accumulate_usage(state.usage, message.usage_metadata)
        if message.chunk_position == "last":
            out.extend(self._finish_message(message_id))
        return out

    def _finish_message(self, message_id: str) -> list[Json]:
        state = self._open.pop(message_id)
        self._closed.add(message_id)
        out = [
            self._event("messages", state.namespace, dict(_finalize_and_build_finish(i, block)))
            for i, block in state.blocks.values()
        ]
        finish = _build_message_finish(
            usage=state.usage,
            response_metadata=state.response_metadata,
            additional_kwargs=state.additional_kwargs,
        )
        out.append(self._event("messages", state.namespace, dict(finish)))
        return out

    def _tool_message(self, namespace: list[str], data: Json) -> list[Json]:
        """A finished tool's result, mirrored on the `messages` channel as a `tool` message
        in the `tools:<tool_call_id>` namespace (langgraph-api `session.py`
        `_emit_tool_output_message`)."""
        output = data.get("output")
        if data.get("event") != "tool-finished" or not isinstance(output, dict):
            return []
        tool_call_id = data.get("tool_call_id")
        if not isinstance(tool_call_id, str):
            raw_id = output.get("tool_call_id")
            tool_call_id = raw_id if isinstance(raw_id, str) else None
        raw_message_id = output.get("id")
        if isinstance(raw_message_id, str) and raw_message_id:
            message_id = raw_message_id
        elif tool_call_id is not None:
            message_id = f"tool-{tool_call_id}"
        else:
            return []
        content = output.get("content")
        if not isinstance(content, str):
            content = "" if content is None else orjson.dumps(content).decode()
        start: Json = {"event": "message-start", "role": "tool", "id": message_id}
        if tool_call_id is not None:
            start["tool_call_id"] = tool_call_id
        where = [*namespace, f"tools:{tool_call_id}"] if tool_call_id is not None else namespace
        text = {"type": "text", "text": content}
        return [
            self._event("messages", where, data)
            for data in (
                start,
                {
                    "event": "content-block-start",
                    "index": 0,
                    "content": {"type": "text", "text": ""},
                },
                {"event": "content-block-delta", "index": 0, "content": text},
                {"event": "content-block-finish", "index": 0, "content": text},
                {"event": "message-finish", "metadata": {}},
            )
        ]

    def _checkpoint(self, namespace: list[str], data: object) -> list[Json]:
        """A `checkpoints` part (LangGraph's `get_state()` shape) as the protocol's
        `Checkpoint` envelope `{id, parent_id?, step, source}`, once per checkpoint
        (langgraph-api `session.py` `_emit_checkpoint_envelope`)."""
        if not isinstance(data, dict):
            return []
        checkpoint_id = _checkpoint_id(data.get("config"))
        if checkpoint_id is None:
            return []
        ns_key = "|".join(namespace)
        if (ns_key, checkpoint_id) in self._checkpoints:
            return []
        self._checkpoints.add((ns_key, checkpoint_id))
        envelope: Json = {"id": checkpoint_id}
        parent = _checkpoint_id(data.get("parent_config"))
        if parent is not None:
            envelope["parent_id"] = parent
        metadata = data.get("metadata")
        if isinstance(metadata, dict):
            if isinstance(metadata.get("step"), int):
                envelope["step"] = metadata["step"]
            if isinstance(metadata.get("source"), str):
                envelope["source"] = metadata["source"]
        event_id = f"synth:{self._run_id}:checkpoint|{ns_key}|{checkpoint_id}"
        return [self._event("checkpoints", namespace, envelope, event_id=event_id)]

    def _input_requested(self, namespace: list[str], requests: list[Json]) -> list[Json]:
        out = []
        for request in requests:
            if request["interrupt_id"] in self._interrupts:
                continue
            self._interrupts.add(request["interrupt_id"])
            ns_key = "\0".join(namespace)
            out.append(
                self._event(
                    "input.requested",
                    namespace,
                    request,
                    event_id=f"synth:{self._run_id}:input|{ns_key}|{request['interrupt_id']}",
                )
            )
        if out and not self._terminal:
            # The run stopped for input: a terminal transition of the root, sent now.
            self._terminal = True
            out.append(self._lifecycle("interrupted"))
        return out

    def _lifecycle(self, status: str, *, error: str | None = None) -> Json:
        data: Json = {"event": status, "graph_name": self._graph}
        if error is not None:
            data["error"] = error
        return self._event("lifecycle", [], data, event_id=f"synth:{self._run_id}:lc||{status}")

    def _event(
        self,
        method: str,
        namespace: list[str],
        data: object,
        *,
        node: str | None = None,
        event_id: str | None = None,
    ) -> Json:
        self.seq += 1
        if event_id is None:
            # Derived from the bus event, so every connection names it alike.
            source, count = self._source
            event_id = source if count == 0 else f"{source}.{count}"
            self._source = (source, count + 1)
        params: Json = {
            "namespace": namespace,
            "timestamp": int(time.time() * 1000),
            "data": data,
        }
        if node is not None:
            params["node"] = node
        return {
            "type": "event",
            "event_id": event_id,
            "seq": self.seq,
            "method": method,
            "params": params,
        }


@dataclass
class _OpenMessage:
    """A message streaming in chunks: its blocks so far (wire index, accumulated block, by
    the bridge's block key), and what its `message-finish` reports."""

    namespace: list[str]
    blocks: dict[object, tuple[int, CompatBlock]] = field(default_factory=dict)
    usage: UsageInfo | None = None
    response_metadata: dict[str, object] = field(default_factory=dict)
    additional_kwargs: dict[str, object] = field(default_factory=dict)


_MESSAGE_CLASSES: dict[str, type[BaseMessage]] = {
    "ai": AIMessage,
    "AIMessageChunk": AIMessageChunk,
    "human": HumanMessage,
    "HumanMessageChunk": HumanMessageChunk,
    "system": SystemMessage,
    "SystemMessageChunk": SystemMessageChunk,
    "chat": ChatMessage,
    "ChatMessageChunk": ChatMessageChunk,
}


def _message_of(raw: Json) -> BaseMessage | None:
    """The message a `messages` part carries (as the run published it), or None."""
    cls = _MESSAGE_CLASSES.get(str(raw.get("type")))
    if cls is None:
        return None
    try:
        return cls.model_validate(raw)
    except ValidationError:
        return None


def _checkpoint_id(config: object) -> str | None:
    configurable = config.get("configurable") if isinstance(config, dict) else None
    found = configurable.get("checkpoint_id") if isinstance(configurable, dict) else None
    return found if isinstance(found, str) else None


def _loads(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode(errors="replace")


def error(command_id: object, code: str, message: str) -> Json:
    """A command's error envelope."""
    return {"type": "error", "id": command_id, "error": code, "message": message}


def malformed(payload: object) -> Json | None:
    """The error for a payload that is no command (an int `id` and a str `method`)."""
    if (
        isinstance(payload, dict)
        and isinstance(payload.get("id"), int)
        and not isinstance(payload.get("id"), bool)
        and isinstance(payload.get("method"), str)
    ):
        return None
    return error(
        payload.get("id") if isinstance(payload, dict) else None,
        "invalid_argument",
        "Protocol commands must include an integer id and string method.",
    )


async def thread_owner(runs: RunManager, owner: str, thread_id: str) -> str | None:
    """ "mine", "other" (another owner's: it does not exist for this one) or None (no thread)."""
    tid = require_uuid(thread_id, "thread")
    async with runs.pool.connection() as conn:
        if await thread_rows.get(conn, owner=owner, thread_id=tid) is not None:
            return "mine"
        return "other" if await thread_rows.exists_for_other_owner(conn, tid) else None


class ThreadCommands:
    """Protocol commands on one thread for one owner. Stateless over HTTP; a websocket
    connection keeps one, with its subscriptions (`subscribe`)."""

    def __init__(self, runs: RunManager, owner: str, thread_id: str) -> None:
        self.runs = runs
        self.owner = owner
        self.thread_id = thread_id
        self.subscriptions: dict[str, EventFilter] = {}
        self.seq = 0
        """The `seq` the connection's events reached (`meta.applied_through_seq`)."""

    def _meta(self) -> Json:
        return {"applied_through_seq": self.seq}

    def _success(self, command_id: int, result: Json) -> Json:
        return {"type": "success", "id": command_id, "result": result, "meta": self._meta()}

    async def handle(self, command: Json) -> Json:
        """The response to one well-formed command (see `malformed`)."""
        command_id: int = command["id"]
        method: str = command["method"]
        params = command.get("params")
        params = params if isinstance(params, dict) else {}
        if method not in KNOWN_COMMANDS:
            return error(command_id, "unknown_command", f"Unknown protocol command: {method}")
        if method == "run.start":
            return await self._run_start(command_id, params)
        if method == "input.respond":
            return await self._input_respond(command_id, params)
        if method == "subscription.subscribe":
            try:
                subscription = EventFilter.parse(params)
            except InvalidRequest:
                return error(
                    command_id,
                    "invalid_argument",
                    "subscription.subscribe requires a non-empty channels array of "
                    "supported channels.",
                )
            self.subscriptions[subscription.id] = subscription
            return self._success(
                command_id, {"subscription_id": subscription.id, "replayed_events": 0}
            )
        if method == "subscription.unsubscribe":
            sub_id = params.get("subscription_id")
            if not isinstance(sub_id, str):
                return error(
                    command_id,
                    "invalid_argument",
                    "subscription.unsubscribe requires a subscription_id.",
                )
            if self.subscriptions.pop(sub_id, None) is None:
                return error(command_id, "no_such_subscription", f"Unknown subscription: {sub_id}")
            return self._success(command_id, {})
        return error(command_id, "no_such_run", "No active run is bound to this thread.")

    async def _run_start(self, command_id: int, params: Json) -> Json:
        assistant_id = params.get("assistant_id")
        if not isinstance(assistant_id, str) or not assistant_id:
            return error(command_id, "invalid_argument", "run.start requires an assistant_id.")
        graph_input = params.get("input")
        resume = graph_input is not None and (
            bool(params.get("force_resume")) or await self._interrupted()
        )
        return await self._create(command_id, assistant_id, params, graph_input, resume=resume)

    async def _create(
        self,
        command_id: int,
        assistant_id: str,
        params: Json,
        graph_input: object,
        *,
        resume: bool,
    ) -> Json:
        config: Json = dict(params["config"]) if isinstance(params.get("config"), dict) else {}
        # The official `_create_or_resume_run` marks the run as the protocol's: its config
        # carries `__event_streaming_v2`, which lets it stream `tools`.
        configurable = config.get("configurable")
        config["configurable"] = {
            **(configurable if isinstance(configurable, dict) else {}),
            V2_MARKER: True,
        }
        metadata = params.get("metadata") if isinstance(params.get("metadata"), dict) else None
        strategy = params.get("multitaskStrategy")
        try:
            body = RunCreate(
                assistant_id=assistant_id,
                input=None if resume else graph_input,
                command=(
                    RunCommand(
                        resume=graph_input, update=params.get("update"), goto=params.get("goto")
                    )
                    if resume
                    else None
                ),
                config=config,
                metadata=metadata,
                stream_mode=list(RUN_STREAM_MODES),
                stream_subgraphs=True,
                stream_resumable=True,
                if_not_exists="create",
                on_completion="keep",
                multitask_strategy=strategy if strategy in _STRATEGIES else "enqueue",
            )
            run = await self.runs.create(self.owner, self.thread_id, body)
        except NotFound:
            raise  # another owner's thread: the route answers 404
        except (TrellisError, ValueError) as exc:
            return error(command_id, "unknown_error", str(exc))
        return self._success(command_id, {"run_id": str(run["run_id"])})

    async def _interrupted(self) -> bool:
        tid = require_uuid(self.thread_id, "thread")
        async with self.runs.pool.connection() as conn:
            thread = await thread_rows.get(conn, owner=self.owner, thread_id=tid)
        return thread is not None and thread["status"] == "interrupted"

    async def _input_respond(self, command_id: int, params: Json) -> Json:
        entries: list[tuple[str, object]] = []
        many = params.get("responses")
        if isinstance(many, list):
            for entry in many:
                if isinstance(entry, dict) and isinstance(entry.get("interrupt_id"), str):
                    entries.append((entry["interrupt_id"], entry.get("response")))
        elif isinstance(params.get("interrupt_id"), str):
            entries.append((params["interrupt_id"], params.get("response")))
        if not entries:
            return error(command_id, "invalid_argument", "input.respond requires an interrupt_id.")
        if not await self._interrupted():
            return error(
                command_id,
                "no_such_interrupt",
                f"Unknown or already-consumed interrupt: {entries[0][0]}",
            )
        tid = require_uuid(self.thread_id, "thread")
        async with self.runs.pool.connection() as conn:
            latest = await run_rows.thread_runs_latest(conn, owner=self.owner, thread_id=tid)
        if latest is None:
            return error(command_id, "no_such_run", "No interrupted run is bound to this thread.")
        answer = await self._create(
            command_id,
            latest.assistant_id,
            params,
            dict(entries),
            resume=True,
        )
        if answer["type"] == "success":
            answer["result"] = {}
        return answer
