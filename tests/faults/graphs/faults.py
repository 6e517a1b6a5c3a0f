"""Graphs for the fault tests. They know nothing about Trellis beyond reading a DSN.

Every node execution is recorded in the database the test created (table
`fault_attempts`: one row per execution, with the worker pid and the run
attempt), and every node's side effect is keyed by (thread, step) in
`fault_effects`, whose `n` counts how often it was performed. The DSN comes
from the run's `configurable.fault_dsn`, else the worker's `DATABASE_URL`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Annotated, Any, TypedDict

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


def _append(left: list[str], right: list[str]) -> list[str]:
    return [*left, *right]


class State(TypedDict, total=False):
    tag: str
    delay: float
    block: float
    events: int
    pause: float
    pad: int
    log: Annotated[list[str], _append]
    total: int


def _dsn(config: RunnableConfig) -> str:
    configurable = config.get("configurable") or {}
    return str(configurable.get("fault_dsn") or os.environ["DATABASE_URL"])


def _ids(config: RunnableConfig) -> tuple[str, str, int]:
    configurable = config.get("configurable") or {}
    metadata = config.get("metadata") or {}
    return (
        str(configurable.get("thread_id")),
        str(configurable.get("run_id") or metadata.get("run_id")),
        int(metadata.get("run_attempt") or 0),
    )


async def _begin(config: RunnableConfig, step: str) -> int:
    thread_id, run_id, attempt = _ids(config)
    async with await psycopg.AsyncConnection.connect(_dsn(config), autocommit=True) as conn:
        cur = await conn.execute(
            "INSERT INTO fault_attempts (thread_id, run_id, step, run_attempt, pid) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (thread_id, run_id, step, attempt, os.getpid()),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def _effect(config: RunnableConfig, step: str, attempt_row: int) -> None:
    """The keyed side effect, and the attempt marked as having performed it, atomically."""
    thread_id, _, _ = _ids(config)
    conn = await psycopg.AsyncConnection.connect(_dsn(config), autocommit=True)
    async with conn, conn.transaction():
        await conn.execute(
            "INSERT INTO fault_effects (thread_id, step) VALUES (%s, %s) "
            "ON CONFLICT (thread_id, step) DO UPDATE SET n = fault_effects.n + 1",
            (thread_id, step),
        )
        await conn.execute(
            "UPDATE fault_attempts SET finished_at = clock_timestamp() WHERE id = %s",
            (attempt_row,),
        )


# steps: n1 -> ... -> n5, each sleeping `delay` and performing a keyed side effect -------------

STEPS = ("n1", "n2", "n3", "n4", "n5")


def _step(name: str) -> Any:
    async def node(state: State, config: RunnableConfig) -> State:
        row = await _begin(config, name)
        await asyncio.sleep(float(state.get("delay", 0.3)))
        await _effect(config, name, row)
        tag = state.get("tag")
        return {"log": [f"{tag}:{name}" if tag else name], "total": state.get("total", 0) + 1}

    node.__name__ = name
    return node


steps_builder = StateGraph(State)
for _name in STEPS:
    steps_builder.add_node(_name, _step(_name))
steps_builder.add_edge(START, STEPS[0])
for _a, _b in itertools.pairwise(STEPS):
    steps_builder.add_edge(_a, _b)
steps_builder.add_edge(STEPS[-1], END)
steps = steps_builder.compile()


# blocking: an async node that blocks the event loop with time.sleep, then one more step --------


async def hog(state: State, config: RunnableConfig) -> State:
    row = await _begin(config, "hog")
    time.sleep(float(state.get("block", 5.0)))  # noqa: ASYNC251 - deliberately blocks the loop
    await _effect(config, "hog", row)
    return {"log": ["hog"]}


async def after(state: State, config: RunnableConfig) -> State:
    row = await _begin(config, "after")
    await _effect(config, "after", row)
    return {"log": ["after"]}


blocking_builder = StateGraph(State)
blocking_builder.add_node("hog", hog)
blocking_builder.add_node("after", after)
blocking_builder.add_edge(START, "hog")
blocking_builder.add_edge("hog", "after")
blocking_builder.add_edge("after", END)
blocking = blocking_builder.compile()


# chatty: c1 -> c2 -> c3, each writing `events` custom events (`pad` bytes of filler each)
# `pause` seconds apart ------------------------------------------------------------------

CHATTY = ("c1", "c2", "c3")


def _chatty(name: str) -> Any:
    async def node(state: State) -> State:
        write = get_stream_writer()
        pad = "x" * int(state.get("pad", 0))  # bytes of filler per event
        for i in range(int(state.get("events", 10))):
            write({"node": name, "i": i, "pad": pad} if pad else {"node": name, "i": i})
            await asyncio.sleep(float(state.get("pause", 0.01)))
        return {"log": [name]}

    node.__name__ = name
    return node


chatty_builder = StateGraph(State)
for _name in CHATTY:
    chatty_builder.add_node(_name, _chatty(_name))
chatty_builder.add_edge(START, CHATTY[0])
for _a, _b in itertools.pairwise(CHATTY):
    chatty_builder.add_edge(_a, _b)
chatty_builder.add_edge(CHATTY[-1], END)
chatty = chatty_builder.compile()


# ticks: t1 -> ... -> t10, each sleeping `delay`; no database of its own ----------------------
# (for database faults: everything it writes goes through Trellis' checkpointer)

TICKS = tuple(f"t{i}" for i in range(1, 11))


def _tick(name: str) -> Any:
    async def node(state: State) -> State:
        await asyncio.sleep(float(state.get("delay", 0.2)))
        return {"log": [name], "total": state.get("total", 0) + 1}

    node.__name__ = name
    return node


ticks_builder = StateGraph(State)
for _name in TICKS:
    ticks_builder.add_node(_name, _tick(_name))
ticks_builder.add_edge(START, TICKS[0])
for _a, _b in itertools.pairwise(TICKS):
    ticks_builder.add_edge(_a, _b)
ticks_builder.add_edge(TICKS[-1], END)
ticks = ticks_builder.compile()


# marked: m1 (one quick step) -> m2, which writes `events` custom events `pause` seconds apart,
# each naming the attempt that wrote it (what the run's own config says), after recording its
# execution; for duplicates: m2 is slow enough to be interrupted mid-step and run again -----

MARKED = ("m1", "m2")


async def m1(state: State, config: RunnableConfig) -> State:
    return {"log": ["m1"]}


async def m2(state: State, config: RunnableConfig) -> State:
    row = await _begin(config, "m2")
    _, _, attempt = _ids(config)
    write = get_stream_writer()
    for i in range(int(state.get("events", 10))):
        write({"node": "m2", "i": i, "run_attempt": attempt})
        await asyncio.sleep(float(state.get("pause", 0.2)))
    await _effect(config, "m2", row)
    return {"log": ["m2"]}


marked_builder = StateGraph(State)
marked_builder.add_node("m1", m1)
marked_builder.add_node("m2", m2)
marked_builder.add_edge(START, "m1")
marked_builder.add_edge("m1", "m2")
marked_builder.add_edge("m2", END)
marked = marked_builder.compile()
