"""Pruning a thread's checkpoints to its last N, for every storage format Trellis writes.

LangGraph's `aprune(keep_latest)` refuses threads whose values are stored as deltas
(`checkpoint_deltas`): a delta row extends older rows, so deleting the blobs of deleted
checkpoints would break the values kept. Here the blobs kept are found from what the kept
checkpoints name, following each delta row's parent link down to its whole base value
(a recursive query), and every other blob of the thread goes. Whole values (the stock
format, and rows written before deltas existed) are simply the chains of length one.

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


async def keep_last(
    conn: AsyncConnection, thread_id: str, keep: int, *, forks: bool = True
) -> Pruned:
    """Delete all but the last `keep` checkpoints of each namespace of the thread, their
    writes, and the blobs no remaining checkpoint needs.

    `forks`: also keep the parent of a kept checkpoint that forked from an older one (a
    checkpoint whose parent is not the next older kept one), so a fork in the window still
    shows where it came from. The oldest kept checkpoint's parent is gone: its
    `parent_checkpoint_id` is cleared, and history ends there."""
    rows = (
        await conn.execute(
            text(
                "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM checkpoints "
                "WHERE thread_id = :t ORDER BY checkpoint_ns, checkpoint_id DESC"
            ),
            {"t": thread_id},
        )
    ).all()
    by_ns: dict[str, list[tuple[str, str | None]]] = {}
    for ns, checkpoint_id, parent in rows:
        by_ns.setdefault(ns, []).append((checkpoint_id, parent))
    deleted = writes = 0
    for ns, chain in by_ns.items():
        if len(chain) <= keep:
            continue
        window = chain[:keep]
        kept = {checkpoint_id for checkpoint_id, _ in window}
        if forks:
            ids = [checkpoint_id for checkpoint_id, _ in chain]
            for position, (_, parent) in enumerate(window[:-1]):
                # The next older checkpoint is its parent in a straight line of steps.
                if parent is not None and parent != ids[position + 1]:
                    kept.add(parent)
        params = {"t": thread_id, "ns": ns, "kept": sorted(kept)}
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
