"""Pruning a thread's checkpoints to its last N, for every storage format Trellis writes.

LangGraph's `aprune(keep_latest)` refuses threads whose values are stored as deltas
(`checkpoint_deltas`): a delta row extends older rows, so deleting the blobs of deleted
checkpoints would break the values kept. Here the blobs kept are found from what the kept
checkpoints name, following each delta row's parent link down to its whole base value
(a recursive query), and every other blob of the thread goes. Whole values (the stock
format, and rows written before deltas existed) are simply the chains of length one.

LangGraph's own `DeltaChannel` (the built-in assistant's `messages`) keeps only the writes
of each step and a whole snapshot now and then; its value is rebuilt by replaying writes
back to the last snapshot. Before a prune, the caller stores a snapshot at each kept
checkpoint whose parent goes (`seed_snapshot`), so every kept checkpoint's history ends
at a snapshot that is kept.

The caller holds the thread's row lock and has checked that no run is pending or running
on the thread: a run writes blobs before the checkpoint that names them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Pruned:
    """What one prune deleted."""

    checkpoints: int
    writes: int
    blobs: int


# The (namespace, channel, version) blob rows the thread's remaining checkpoints need:
# the versions they name, and the parents of delta rows, down to each chain's base.
_GARBAGE_BLOBS_SQL = """
WITH RECURSIVE need(checkpoint_ns, channel, version) AS (
    SELECT c.checkpoint_ns, v.key, v.value
    FROM checkpoints c, jsonb_each_text(c.checkpoint -> 'channel_versions') v
    WHERE c.thread_id = :t
  UNION
    SELECT b.checkpoint_ns, b.channel, split_part(b.type, '|', 2)
    FROM need n JOIN checkpoint_blobs b
      ON b.thread_id = :t AND b.checkpoint_ns = n.checkpoint_ns
     AND b.channel = n.channel AND b.version = n.version
    WHERE starts_with(b.type, 'trellis.delta|')
)
DELETE FROM checkpoint_blobs b
WHERE b.thread_id = :t AND NOT EXISTS (
    SELECT 1 FROM need n WHERE n.checkpoint_ns = b.checkpoint_ns
    AND n.channel = b.channel AND n.version = b.version)
"""


@dataclass(frozen=True)
class Plan:
    """Which checkpoints of a thread a prune keeps."""

    kept: dict[str, list[str]]
    """Per namespace to prune, the ids kept (namespaces within the limit are absent)."""
    roots: list[str]
    """The kept root-namespace checkpoints whose parent goes: where a `DeltaChannel`'s
    history must be seeded with a snapshot before the prune."""


async def plan(conn: AsyncConnection, thread_id: str, keep: int, *, forks: bool) -> Plan:
    """Keep the last `keep` checkpoints of each namespace of the thread.

    `forks`: also keep the parent of a kept checkpoint that forked from an older one (a
    checkpoint whose parent is not the next older kept one), so a fork in the window still
    shows where it came from. Namespaces below the root whose checkpoints carry delta
    counters (`DeltaChannel` state of a subgraph) are left whole."""
    rows = (
        await conn.execute(
            text(
                "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
                "metadata ? 'counters_since_delta_snapshot' AS delta FROM checkpoints "
                "WHERE thread_id = :t ORDER BY checkpoint_ns, checkpoint_id DESC"
            ),
            {"t": thread_id},
        )
    ).all()
    by_ns: dict[str, list[tuple[str, str | None]]] = {}
    delta_ns: set[str] = set()
    for ns, checkpoint_id, parent, delta in rows:
        by_ns.setdefault(ns, []).append((checkpoint_id, parent))
        if delta and ns:
            delta_ns.add(ns)
    kept_by_ns: dict[str, list[str]] = {}
    roots: list[str] = []
    for ns, chain in by_ns.items():
        if len(chain) <= keep or ns in delta_ns:
            continue
        window = chain[:keep]
        kept = {checkpoint_id for checkpoint_id, _ in window}
        if forks:
            ids = [checkpoint_id for checkpoint_id, _ in chain]
            for position, (_, parent) in enumerate(window[:-1]):
                # The next older checkpoint is its parent in a straight line of steps.
                if parent is not None and parent != ids[position + 1]:
                    kept.add(parent)
        kept_by_ns[ns] = sorted(kept)
        if ns == "":
            parents = dict(chain)
            roots = [c for c in sorted(kept) if parents.get(c) not in kept]
    return Plan(kept_by_ns, roots)


async def channel_version(
    conn: AsyncConnection, thread_id: str, checkpoint_id: str, channel: str
) -> tuple[str | None, bool]:
    """The version of `channel` a root checkpoint names, and whether a value is stored for
    it (a blob, as a `DeltaChannel` snapshot is)."""
    row = (
        await conn.execute(
            text(
                "SELECT c.checkpoint -> 'channel_versions' ->> :ch AS version, EXISTS ("
                "SELECT 1 FROM checkpoint_blobs b WHERE b.thread_id = c.thread_id "
                "AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = :ch "
                "AND b.version = c.checkpoint -> 'channel_versions' ->> :ch "
                "AND b.type <> 'empty') AS stored "
                "FROM checkpoints c WHERE c.thread_id = :t AND c.checkpoint_ns = '' "
                "AND c.checkpoint_id = :c"
            ),
            {"t": thread_id, "c": checkpoint_id, "ch": channel},
        )
    ).first()
    if row is None:
        return None, False
    return row[0], bool(row[1])


async def seed_snapshot(
    conn: AsyncConnection,
    thread_id: str,
    checkpoint_id: str,
    channel: str,
    version: str,
    stored: tuple[str, bytes],
) -> None:
    """Store a `DeltaChannel` snapshot (`stored`: its serde type and bytes) at the version a
    root checkpoint names, as LangGraph's saver stores one: a blob, and a `true` marker in
    the checkpoint's `channel_values`. Its history then starts there."""
    type_, blob = stored
    await conn.execute(
        text(
            "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) "
            "VALUES (:t, '', :ch, :v, :type, :blob) ON CONFLICT "
            "(thread_id, checkpoint_ns, channel, version) DO UPDATE "
            "SET type = EXCLUDED.type, blob = EXCLUDED.blob"
        ),
        {"t": thread_id, "ch": channel, "v": version, "type": type_, "blob": blob},
    )
    await conn.execute(
        text(
            "UPDATE checkpoints SET checkpoint = jsonb_set(checkpoint, "
            "ARRAY['channel_values', :ch], 'true'::jsonb, true) "
            "WHERE thread_id = :t AND checkpoint_ns = '' AND checkpoint_id = :c"
        ),
        {"t": thread_id, "c": checkpoint_id, "ch": channel},
    )


async def apply(conn: AsyncConnection, thread_id: str, planned: Plan) -> Pruned:
    """Delete what `planned` does not keep: checkpoints, their writes, and the blobs no
    remaining checkpoint needs. The oldest kept checkpoint's parent is gone: its
    `parent_checkpoint_id` is cleared, and history ends there."""
    deleted = writes = 0
    for ns, kept in planned.kept.items():
        params = {"t": thread_id, "ns": ns, "kept": kept}
        writes += (
            await conn.execute(
                text(
                    "DELETE FROM checkpoint_writes WHERE thread_id = :t AND checkpoint_ns = :ns "
                    "AND checkpoint_id <> ALL(:kept)"
                ),
                params,
            )
        ).rowcount
        deleted += (
            await conn.execute(
                text(
                    "DELETE FROM checkpoints WHERE thread_id = :t AND checkpoint_ns = :ns "
                    "AND checkpoint_id <> ALL(:kept)"
                ),
                params,
            )
        ).rowcount
        await conn.execute(
            text(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = :t "
                "AND checkpoint_ns = :ns AND parent_checkpoint_id <> ALL(:kept)"
            ),
            params,
        )
    if not deleted:
        return Pruned(0, writes, 0)
    blobs = (await conn.execute(text(_GARBAGE_BLOBS_SQL), {"t": thread_id})).rowcount
    return Pruned(deleted, writes, blobs)
