"""Request bodies of the LangGraph Server API, validated by Pydantic.

Field names and defaults follow what `langgraph-sdk` sends: it omits nulls, so
every optional field has a default here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from server.core.types import Json, MultitaskStrategy, ThreadStatus

IfExists = Literal["raise", "do_nothing"]
"""What to do when creating a resource whose id is taken."""

StreamMode = Literal[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "debug",
    "tasks",
    "checkpoints",
    "events",
    "tools",
    "lifecycle",
]
"""Stream modes a client may ask for; `messages-tuple` is LangGraph's `messages` as tuples.
`tools` and `lifecycle` only for the protocol's runs (`__event_streaming_v2`)."""

SortOrder = Literal["asc", "desc"]

MAX_PAGE = 1000
Limit = Annotated[int, Field(ge=1, le=MAX_PAGE)]
MAX_OFFSET = 10_000_000
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]


class Body(BaseModel):
    """Base of request bodies: unknown fields are ignored, as the official server does.

    What they may hold (no NUL, lone surrogates, out-of-range numbers, deep nesting) is
    checked once where the JSON is parsed: `BodyGuard` for HTTP, the thread-stream
    websocket for its commands; bodies built in code come from values already checked."""

    model_config = ConfigDict(extra="ignore")


class AssistantCreate(Body):
    graph_id: str = Field(min_length=1, max_length=256)
    assistant_id: str | None = None
    config: Json = Field(default_factory=dict)
    context: Json = Field(default_factory=dict)
    metadata: Json = Field(default_factory=dict)
    if_exists: IfExists = "raise"
    name: str | None = Field(default=None, max_length=512)
    description: str | None = Field(default=None, max_length=10_000)


class AssistantPatch(Body):
    graph_id: str | None = Field(default=None, min_length=1, max_length=256)
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    name: str | None = Field(default=None, max_length=512)
    description: str | None = Field(default=None, max_length=10_000)


class AssistantSearch(Body):
    metadata: Json = Field(default_factory=dict)
    graph_id: str | None = None
    name: str | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[str] | None = None


class AssistantCount(Body):
    metadata: Json = Field(default_factory=dict)
    graph_id: str | None = None
    name: str | None = None


class AssistantVersions(Body):
    metadata: Json = Field(default_factory=dict)
    limit: Limit = 10
    offset: Offset = 0


class AssistantSetLatest(Body):
    version: int = Field(ge=1, le=2**31 - 1)


TtlStrategy = Literal["delete", "keep_latest"]
"""What happens to a thread once its TTL passes: deleted with all its data, or pruned to
its latest checkpoint (the official server's `ThreadTTLConfig.strategy`)."""


class ThreadTTL(Body):
    """A thread's time to live, as the SDK sends it (`threads.create`/`update` `ttl`)."""

    strategy: TtlStrategy = "delete"
    ttl: float = Field(gt=0, allow_inf_nan=False)
    """Minutes from now (and from each new run) until the strategy applies."""


class ThreadCreate(Body):
    thread_id: str | None = None
    metadata: Json = Field(default_factory=dict)
    if_exists: IfExists = "raise"
    supersteps: list[Json] | None = None
    ttl: ThreadTTL | None = None


class ThreadPatch(Body):
    metadata: Json = Field(default_factory=dict)
    ttl: ThreadTTL | None = None


class ThreadPrune(Body):
    thread_ids: list[str] = Field(max_length=MAX_PAGE)
    strategy: TtlStrategy = "delete"


class ThreadSearch(Body):
    metadata: Json = Field(default_factory=dict)
    values: Json = Field(default_factory=dict)
    ids: list[str] | None = Field(default=None, max_length=MAX_PAGE)
    status: ThreadStatus | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: (
        Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None
    ) = None
    sort_order: SortOrder | None = None
    select: list[str] | None = None


class ThreadCount(Body):
    metadata: Json = Field(default_factory=dict)
    values: Json = Field(default_factory=dict)
    status: ThreadStatus | None = None


class CheckpointRef(Body):
    checkpoint_id: str | None = None
    checkpoint_ns: str = ""
    checkpoint_map: Json | None = None
    thread_id: str | None = None


class StateUpdate(Body):
    values: object = None
    as_node: str | None = Field(default=None, min_length=1, max_length=256)
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None


class StateAtCheckpoint(Body):
    checkpoint: CheckpointRef
    subgraphs: bool = False


class HistoryQuery(Body):
    limit: Limit = 10
    before: str | CheckpointRef | None = None
    metadata: Json | None = None
    checkpoint: CheckpointRef | None = None


class RunCommand(Body):
    resume: object = None
    update: object = None
    goto: object = None

    @model_validator(mode="after")
    def _not_empty(self) -> RunCommand:
        if self.resume is None and self.update is None and self.goto is None:
            raise ValueError("command needs at least one of 'resume', 'update' or 'goto'")
        return self


class RunCreate(Body):
    assistant_id: str = Field(min_length=1, max_length=256)
    input: object = None
    command: RunCommand | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None
    stream_mode: StreamMode | list[StreamMode] = Field(default="values")
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = Field(default=None, max_length=2048)
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    after_seconds: float = Field(default=0, ge=0, le=86_400 * 30)
    feedback_keys: list[str] | None = None

    @field_validator("stream_mode")
    @classmethod
    def _bounded_modes(cls, value: StreamMode | list[StreamMode]) -> StreamMode | list[StreamMode]:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stream modes")
        return value

    @field_validator("webhook")
    @classmethod
    def _http_webhook(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("webhook must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _input_or_command(self) -> RunCreate:
        if self.input is not None and self.command is not None:
            raise ValueError("send either 'input' or 'command', not both")
        return self

    @property
    def stream_modes(self) -> list[StreamMode]:
        """The stream modes as a de-duplicated list, in the order asked."""
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return list(dict.fromkeys(modes)) or ["values"]


class RunCancel(Body):
    run_ids: list[str] | None = None
    thread_id: str | None = None
    status: Literal["pending", "running", "all"] | None = None
