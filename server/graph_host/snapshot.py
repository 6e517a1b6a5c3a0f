"""Thread state as the API shows it: LangGraph `StateSnapshot`s turned into plain JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from server.core.encoding import dumps, to_jsonable
from server.core.types import Checkpoint, Interrupts, JsonValue, ThreadState
from server.graph_host.registry import AnyGraph


def checkpoint_ref(config: RunnableConfig | None) -> Checkpoint | None:
    """`{thread_id, checkpoint_ns, checkpoint_id}` of a checkpoint config."""
    if not config:
        return None
    conf = config.get("configurable", {})
    if "checkpoint_id" not in conf:
        return None
    ref = {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
        **({"checkpoint_map": conf["checkpoint_map"]} if conf.get("checkpoint_map") else {}),
    }
    return cast(Checkpoint, ref)


def interrupts_by_task(snapshot: StateSnapshot) -> Interrupts:
    """Pending interrupts keyed by task id, as threads show them."""
    out: Interrupts = {}
    for task in snapshot.tasks:
        if task.interrupts:
            out[task.id] = [{"value": to_jsonable(i.value), "id": i.id} for i in task.interrupts]
    return out


def _snapshot_fields(snapshot: StateSnapshot) -> dict[str, object]:
    """A `ThreadState`'s fields, values still LangGraph objects (encoded by the caller)."""
    checkpoint = checkpoint_ref(snapshot.config)
    parent = checkpoint_ref(snapshot.parent_config)
    tasks: list[dict[str, object]] = []  # a `ThreadTask` once encoded
    for task in snapshot.tasks:
        sub = task.state
        state: dict[str, object] | None = None
        task_checkpoint: dict[str, object] | None = None
        if isinstance(sub, StateSnapshot):
            state = _snapshot_fields(sub)
        elif sub is not None:
            # A subgraph's checkpoint config: Studio asks `/state/checkpoint` for it.
            task_checkpoint = dict(sub.get("configurable", {}))
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path),
                "error": task.error if task.error is None else repr(task.error),
                "interrupts": [{"value": i.value, "id": i.id} for i in task.interrupts],
                "checkpoint": task_checkpoint,
                "state": state,
                "result": task.result,
            }
        )
    return {
        "values": snapshot.values if snapshot.values is not None else {},
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": snapshot.metadata or {},
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": [{"value": i.value, "id": i.id} for i in snapshot.interrupts],
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def snapshot_json(snapshot: StateSnapshot) -> ThreadState:
    """A `ThreadState` object."""
    # Encoded as a whole: values, paths, metadata and results hold LangGraph objects.
    out: ThreadState = to_jsonable(_snapshot_fields(snapshot))
    return out


def snapshot_bytes(snapshot: StateSnapshot) -> bytes:
    """A `ThreadState` encoded as JSON, without building the plain-JSON object first: for
    answers whose size matters (a long thread's state is megabytes)."""
    return dumps(_snapshot_fields(snapshot))


def empty_state() -> ThreadState:
    """The state of a thread that has no checkpoint yet."""
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "metadata": {},
        "created_at": None,
        "checkpoint": None,
        "parent_checkpoint": None,
        "interrupts": [],
        "checkpoint_id": None,
        "parent_checkpoint_id": None,
    }


@dataclass(frozen=True)
class LatestState:
    """What a thread row and a run's record need of a state (its values still as the graph
    holds them: encoding them is the caller's choice)."""

    values: object
    checkpoint_id: str | None
    """None before the thread's first checkpoint."""
    interrupts: Interrupts
    has_next: bool


async def latest_state(
    graph: AnyGraph, thread_id: str, *, checkpoint_id: str | None = None
) -> LatestState:
    """The thread's state as of its latest checkpoint, or as of `checkpoint_id` (as the
    thread showed it when that was its latest, if it still is)."""
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    snapshot = await graph.aget_state({"configurable": configurable})
    ref = checkpoint_ref(snapshot.config)
    if checkpoint_id is not None and (ref is None or ref["checkpoint_id"] != checkpoint_id):
        # The thread moved on: the checkpoint as it was written (the same values, for one
        # whose run finished; a run that stopped mid-step shows the step's start).
        configurable["checkpoint_id"] = checkpoint_id
        snapshot = await graph.aget_state({"configurable": configurable})
        ref = checkpoint_ref(snapshot.config)
    return LatestState(
        snapshot.values if snapshot.values is not None else {},
        ref["checkpoint_id"] if ref else None,
        interrupts_by_task(snapshot),
        bool(snapshot.next),
    )


def bounded_values(values: object, max_bytes: int) -> tuple[JsonValue, list[str]]:
    """A thread row's copy of `values`, for search: its top-level keys, in order, while their
    JSON fits in `max_bytes`; and the keys left out (`[""]`: all of a state that is not an
    object). Measuring stops at the budget, so a long list costs no more than a short one."""
    if not isinstance(values, Mapping):
        if _size_within(values, max_bytes) is None:
            return None, [""]
        return to_jsonable(values), []
    kept: dict[str, JsonValue] = {}
    omitted: list[str] = []
    budget = max_bytes
    for key, value in values.items():
        size = _size_within(value, budget - len(str(key)) - 4)
        if size is None:
            omitted.append(str(key))
            continue
        kept[str(key)] = to_jsonable(value)
        budget -= size + len(str(key)) + 4
    return kept, omitted


def _size_within(value: object, budget: int) -> int | None:
    """The length of `value`'s JSON when it is at most `budget`, else None; lists and mappings
    are measured an item at a time and given up on past the budget."""
    if budget < 0:
        return None
    if isinstance(value, str | bytes) and len(value) > budget:
        return None
    if isinstance(value, list | tuple):
        total = 2
        for item in value:
            if (size := _size_within(item, budget - total)) is None:
                return None
            total += size + 1
        return total if total <= budget else None
    if isinstance(value, Mapping):
        total = 2
        for key, item in value.items():
            if (size := _size_within(item, budget - total - len(str(key)) - 4)) is None:
                return None
            total += size + len(str(key)) + 4
        return total if total <= budget else None
    size = len(dumps(value))
    return size if size <= budget else None


async def thread_snapshot(
    graph: AnyGraph, thread_id: str, *, checkpoint_id: str | None = None
) -> tuple[JsonValue, Interrupts, bool]:
    """The values, pending interrupts and whether steps remain, for a thread row: as of
    the latest checkpoint, or of `checkpoint_id`."""
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    snapshot = await graph.aget_state({"configurable": configurable})
    values = to_jsonable(snapshot.values if snapshot.values is not None else {})
    return values, interrupts_by_task(snapshot), bool(snapshot.next)
