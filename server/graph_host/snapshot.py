"""Thread state as the API shows it: LangGraph `StateSnapshot`s turned into plain JSON."""

from __future__ import annotations

from typing import cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from server.core.encoding import to_jsonable
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


def snapshot_json(snapshot: StateSnapshot) -> ThreadState:
    """A `ThreadState` object."""
    checkpoint = checkpoint_ref(snapshot.config)
    parent = checkpoint_ref(snapshot.parent_config)
    tasks: list[dict[str, object]] = []  # a `ThreadTask` once encoded
    for task in snapshot.tasks:
        sub = task.state
        state: ThreadState | None = None
        task_checkpoint: dict[str, object] | None = None
        if isinstance(sub, StateSnapshot):
            state = snapshot_json(sub)
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
    # Encoded as a whole: values, paths, metadata and results hold LangGraph objects.
    out: ThreadState = to_jsonable(
        {
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
    )
    return out


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
