"""The types the layers share: JSON values, and the rows and wire objects of each resource.

Rows mirror `langgraph_sdk.schema` (mirrored, not imported: rows carry `uuid.UUID` and
`datetime` where the SDK's types say `str`; `server.core.encoding` writes them as the wire
strings). Values the server passes through without looking inside are `object`.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
"""Any JSON value, as parsed from or written to the wire or JSONB."""

JsonObject: TypeAlias = dict[str, JsonValue]
"""A JSON object."""

Json: TypeAlias = dict[str, Any]  # Any: a caller's JSON object, read by key with no schema
"""A JSON object whose values Trellis reads without a schema (request fields, JSONB columns)."""

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
"""Where a run is in its lifecycle (`pending` → `running` → one of the four ends)."""

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
"""A thread's status, derived from its runs and its latest checkpoint."""

MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
"""What a new run does when its thread already has an active run."""

# Resource rows and wire objects (TypedDicts) follow, one section per resource.

# --- runs ------------------------------------------------------------------------------


# --- threads and their state -----------------------------------------------------------


class ThreadInterrupt(TypedDict):
    """A pending `interrupt()` as threads show it (SDK: `Interrupt`; named apart from the runs'
    own until the two are one)."""

    value: JsonValue
    id: str
    """What a resume names to answer this interrupt."""


ThreadInterrupts: TypeAlias = dict[str, list[ThreadInterrupt]]
"""Pending interrupts keyed by the id of the task that raised them."""


class Thread(TypedDict):
    """A thread (SDK: `Thread`); `values` and `interrupts` are its latest state's."""

    thread_id: str
    created_at: str
    updated_at: str
    state_updated_at: str
    metadata: Json
    status: ThreadStatus
    config: Json
    values: JsonValue
    """An object for most graphs; `{}` before the first checkpoint."""
    interrupts: ThreadInterrupts
    error: Json | None
    """How the last run failed, when it did."""


class Checkpoint(TypedDict):
    """Where a state lives (SDK: `Checkpoint`)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    checkpoint_map: NotRequired[Json]


class ThreadTask(TypedDict):
    """A step of the graph pending at a checkpoint (SDK: `ThreadTask`)."""

    id: str
    name: str
    path: list[JsonValue]
    error: str | None
    interrupts: list[ThreadInterrupt]
    checkpoint: Json | None
    """A subgraph's checkpoint config, when the task runs one (Studio reads its state)."""
    state: ThreadState | None
    """A subgraph's state, when asked for with `subgraphs`."""
    result: JsonValue


class ThreadState(TypedDict):
    """A thread's state at a checkpoint (SDK: `ThreadState`)."""

    values: JsonValue
    next: list[str]
    tasks: list[ThreadTask]
    metadata: Json
    created_at: str | None
    checkpoint: Checkpoint | None
    parent_checkpoint: Checkpoint | None
    interrupts: list[ThreadInterrupt]
    checkpoint_id: str | None
    parent_checkpoint_id: str | None


class ThreadUpdateStateResponse(TypedDict):
    """The checkpoint a state update wrote (SDK: `ThreadUpdateStateResponse`)."""

    checkpoint: Checkpoint
    configurable: Json
    """The new checkpoint's `configurable`, as LangGraph returned it."""
    checkpoint_id: str


# --- assistants ------------------------------------------------------------------------


class AssistantVersion(TypedDict):
    """One version of an assistant's configuration (SDK: `AssistantVersion`)."""

    assistant_id: str
    graph_id: str
    config: Json
    context: Json
    metadata: Json
    name: str
    description: str | None
    version: int
    created_at: str


class Assistant(AssistantVersion):
    """An assistant: its current version, and when it last changed (SDK: `Assistant`)."""

    updated_at: str


class GraphSchema(TypedDict):
    """JSON Schemas of a graph's input, output, state, config and context (SDK: `GraphSchema`);
    None where LangGraph cannot build one."""

    graph_id: str
    input_schema: JsonObject | None
    output_schema: JsonObject | None
    state_schema: JsonObject | None
    config_schema: JsonObject | None
    context_schema: JsonObject | None


Subgraphs: TypeAlias = dict[str, GraphSchema]
"""Schemas of a graph's subgraphs, keyed by namespace (SDK: `Subgraphs`)."""


# --- approvals -------------------------------------------------------------------------
