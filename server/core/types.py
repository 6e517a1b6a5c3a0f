"""The types the layers share: JSON values, and the rows and wire objects of each resource.

Rows mirror `langgraph_sdk.schema` (mirrored, not imported: rows carry `uuid.UUID` and
`datetime` where the SDK's types say `str`; `server.core.encoding` writes them as the wire
strings). Values the server passes through without looking inside are `object`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NotRequired, Required, TypeAlias, TypedDict

if TYPE_CHECKING:  # for annotations only: this module stays free of imports at runtime
    from langgraph.types import Durability

    from server.core.schemas import StreamMode  # schemas imports this module

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
"""A JSON value, as parsed from or written to the wire or JSONB."""

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

CancelAction = Literal["interrupt", "rollback", "drain", "requeue", "lost"]
"""How a run is stopped: `interrupt` keeps its checkpoints and marks it interrupted;
`rollback` deletes both; `drain` interrupts at the next step boundary; `requeue` hands
it back to the queue (shutdown); `lost` abandons it to the worker that took it over.
A run row records the first three (what a client or a multitask strategy asked for)."""


class Interrupt(TypedDict):
    """A pending `interrupt()` of a thread's state (SDK: `Interrupt`)."""

    value: JsonValue
    id: str
    """What a resume names to answer this interrupt."""


Interrupts: TypeAlias = dict[str, list[Interrupt]]
"""Pending interrupts keyed by the id of the task that raised them."""


class RunCommandKwargs(TypedDict, total=False):
    """A run's `command` as stored (`RunCommand` without its unset fields)."""

    resume: JsonValue
    update: JsonValue
    goto: JsonValue


class RunCheckpointKwargs(TypedDict, total=False):
    """A run's `checkpoint` as stored (`CheckpointRef`)."""

    checkpoint_id: str
    checkpoint_ns: str
    checkpoint_map: Json
    thread_id: str


class RunKwargs(TypedDict, total=False):
    """What a run keeps of its request (`RunManager._run_kwargs`: `RunCreate` as JSON without
    its nulls, the stream modes as a list, the caller's identity), for whichever worker
    executes it. The keys without a default in `RunCreate` may be missing."""

    assistant_id: Required[str]
    graph_id: str
    """Added when the run is created: every stored run has it."""
    auth_user: Required[Json]
    """The caller's identity, so any worker can rebuild it (`auth.identity`)."""
    stream_mode: Required[list[StreamMode]]
    stream_subgraphs: Required[bool]
    stream_resumable: Required[bool]
    waited: bool
    """Created by a request that waits for its output (`/runs/wait`)."""
    multitask_strategy: Required[MultitaskStrategy]
    if_not_exists: Required[Literal["create", "reject"]]
    on_disconnect: Required[Literal["cancel", "continue"]]
    on_completion: Required[Literal["delete", "keep"]]
    after_seconds: Required[float]
    input: JsonValue
    command: RunCommandKwargs
    config: Json
    context: Json
    metadata: Json
    interrupt_before: Literal["*"] | list[str]
    interrupt_after: Literal["*"] | list[str]
    webhook: str
    checkpoint: RunCheckpointKwargs
    checkpoint_id: str
    checkpoint_during: bool
    durability: Durability
    feedback_keys: list[str]
    request_id: str
    """The id of the request that created the run (its log lines carry it)."""
    traceparent: str
    """The W3C trace context of that request, when it had one (the run's spans join it)."""


class _RunFields(TypedDict):
    status: RunStatus
    metadata: Json
    kwargs: RunKwargs
    multitask_strategy: MultitaskStrategy


class Run(_RunFields):
    """A run as the API shows it (SDK: `Run`, plus the `kwargs` the official server shows)."""

    run_id: str
    thread_id: str
    assistant_id: str
    created_at: str
    updated_at: str


class RunAssistant(TypedDict):
    """What an executor needs of a run's assistant (`trellis_run_assistant`)."""

    assistant_id: str
    graph_id: str
    config: Json
    context: Json
    metadata: Json


class RunRow(_RunFields):
    """A full run row, as the queue holds it: `Run`'s fields as Python values (not wire
    strings), plus who owns it, its lease and its outcome. Not a subclass of `Run`: a
    TypedDict cannot change the type of a field it inherits."""

    run_id: uuid.UUID
    thread_id: uuid.UUID
    assistant_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    owner: str
    temporary: bool
    """A stateless run's thread, deleted when the run ends."""
    error: Json | None
    output: JsonValue
    """`__error__` or `__interrupt__` (before migration 0006: the final values too)."""
    checkpoint_id: str | None
    """The final checkpoint (root namespace), whose values are the run's output."""
    checkpoint_ns: str
    cancel_action: CancelAction | None
    """Set when a client (or a multitask strategy) asked a running run to stop."""
    not_before: datetime
    attempt: int
    lease_owner: str | None
    lease_epoch: int
    lease_expires_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    assistant: NotRequired[RunAssistant | None]
    """Only on a claimed (or just created) run: its assistant, None if it was deleted."""


class ActiveRun(TypedDict):
    """A pending or running run of a thread, as multitask checks read it."""

    run_id: str
    status: RunStatus


class AbandonedRun(TypedDict):
    """A run whose worker died after a client cancelled it (the sweep ends it)."""

    run_id: uuid.UUID
    thread_id: uuid.UUID
    owner: str
    cancel_action: CancelAction
    resumable: bool
    """It was created with `stream_resumable` (its events stay replayable)."""


# --- threads and their state -----------------------------------------------------------


class ThreadTtlInfo(TypedDict):
    """A thread's TTL as `GET /threads/{id}?include=ttl` shows it under `ttl`."""

    strategy: str
    ttl_minutes: float
    expires_at: str | None
    """None once `keep_latest` applied; the thread's next run sets it again."""


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
    interrupts: Interrupts
    error: Json | None
    """How the last run failed, when it did."""
    ttl: NotRequired[ThreadTtlInfo | None]
    """Only with `GET /threads/{id}?include=ttl`."""


class StoredThread(Thread):
    """A thread row: `values` is a bounded copy of the latest values (for search), which
    leaves out the top-level keys in `values_omitted` (`""`: all of a non-object state)."""

    values_omitted: list[str]


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
    interrupts: list[Interrupt]
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
    interrupts: list[Interrupt]
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

ApprovalStatus = Literal["pending", "approved", "rejected", "edited", "expired", "superseded"]
"""`pending` until decided (`approved|rejected|edited`), or closed without a decision:
`expired` (deadline passed) or `superseded` (the thread moved past the interrupt)."""


class Approval(TypedDict):
    """A human decision an `interrupt()` waits for, as the API shows it."""

    approval_id: str
    thread_id: str
    run_id: str
    """The run that reached the interrupt."""
    assistant_id: str
    interrupt_id: str
    task_id: str
    value: JsonValue
    """The interrupt's value: what the human is asked."""
    status: ApprovalStatus
    decision: Json | None
    """`{"decision", "value", "comment"}` once decided."""
    decided_by: str | None
    decided_at: str | None
    resume_run_id: str | None
    """The run that resumed the thread with the decision."""
    expires_at: str | None
    created_at: str
    updated_at: str


class DecidedApproval(Approval):
    """A decided approval, with the run that resumes its thread."""

    run: Run
