"""Delta storage of list channels: a list that only grew is stored as the items it gained.

LangGraph's saver writes a channel's whole value at each of its new versions, so a
`messages: Annotated[list, add_messages]` thread stores its history again at every
step, and its storage grows with the square of its length. Here, while a run
executes, the saver remembers the list values it read and wrote; a new value that
starts with exactly the items of the one remembered (the same objects, in order) is
stored as the appended items plus the version it extends. Anything else (a first
write, an item replaced or removed, a reorder) is stored whole, as before.

A delta is an ordinary `checkpoint_blobs` row (no schema change):

    type = "trellis.delta|<parent version>|<base version>|<serde type of the suffix>"
    blob = the suffix, serialised by the saver's serde

`<base>` is the whole value the chain starts from, so the rows of a chain are found in
one query (every row with that base, between the base and the version read). A chain
ends, and the value is stored whole again, when its deltas outweigh `CHAIN_RATIO` times
its base (or `FLOOR_BYTES` for a small base) or reach `MAX_CHAIN` rows. The whole values
stored then grow geometrically, so a thread's bytes stay within a small multiple of
what it added (the whole values add up to ~1.25x the last one); a read fetches at
most `MAX_CHAIN + 1` rows per channel, and decodes each item of the value once, as
reading it whole would.

Rows written before this module existed, or by the stock saver, are whole values and
read as they always did.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncCursor
from psycopg.rows import DictRow

DELTA = "trellis.delta"
FLOOR_BYTES = 64 * 1024
CHAIN_RATIO = 4
MAX_CHAIN = 2048

BlobKey = tuple[str, str, str, str]
"""thread_id, checkpoint_ns, channel, version: a `checkpoint_blobs` row."""

ChannelKey = tuple[str, str, str]
"""thread_id, checkpoint_ns, channel."""


class BrokenChain(Exception):
    """A delta whose parent row is gone (deleted by something that does not know deltas)."""


@dataclass(frozen=True, slots=True)
class Delta:
    parent: str
    base: str
    inner: str


def delta_type(parent: str, base: str, inner: str) -> str:
    return f"{DELTA}|{parent}|{base}|{inner}"


def parse(type_: str) -> Delta | None:
    """The delta a row's type describes, or None for a whole value."""
    if not type_.startswith(DELTA + "|"):
        return None
    _, parent, base, inner = type_.split("|", 3)
    return Delta(parent, base, inner)


# What a run knows ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    """A list channel's value as stored at `version`, and the chain it ends."""

    version: str
    items: tuple[object, ...]
    base: str
    base_bytes: int
    chain_bytes: int
    chain: int

    def extended_by(self, items: Sequence[object]) -> bool:
        """Whether `items` starts with exactly this value's items (the same objects)."""
        known = self.items
        return len(items) >= len(known) and all(a is b for a, b in zip(known, items, strict=False))


_KNOWN: ContextVar[dict[ChannelKey, Stored] | None] = ContextVar(
    "trellis_known_lists", default=None
)


def remember_lists() -> None:
    """Let the saver write deltas in the current task (and the tasks it starts).

    The executor calls it once per run: what the run reads and writes is remembered
    for the run's lifetime only, so nothing outlives it and another process's writes
    can never be mistaken for this one's (each run starts by reading the checkpoint).
    """
    _KNOWN.set({})


def known_lists() -> dict[ChannelKey, Stored] | None:
    return _KNOWN.get()


def encode(
    serde: SerializerProtocol, prior: Stored | None, version: str, value: list[object]
) -> tuple[str, bytes, Stored]:
    """The row type and blob that store `value` at `version`, and what is then stored."""
    items = tuple(value)
    if prior is not None and prior.chain < MAX_CHAIN and prior.extended_by(items):
        inner, blob = serde.dumps_typed(list(items[len(prior.items) :]))
        if prior.chain_bytes + len(blob) <= max(prior.base_bytes * CHAIN_RATIO, FLOOR_BYTES):
            stored = Stored(
                version,
                items,
                prior.base,
                prior.base_bytes,
                prior.chain_bytes + len(blob),
                prior.chain + 1,
            )
            return delta_type(prior.version, prior.base, inner), blob, stored
    inner, blob = serde.dumps_typed(value)
    return inner, blob, Stored(version, items, version, len(blob), 0, 0)


def _digest(type_: str, blob: bytes | None) -> bytes:
    return hashlib.blake2b(blob or b"", digest_size=16, person=type_.encode()[:16]).digest()


class Warm:
    """The list values this process's runs last wrote, per channel, kept for the thread's
    next run here: it reads them from memory instead of decoding them again, as long as
    the checkpoint it reads still names their version and holds the very row written
    (versions are unique, so a value written since by anyone else never matches; a row
    changed behind the saver's back is decoded, and refused if it must be). Bounded by
    the items held."""

    def __init__(self, max_items: int = 100_000, max_entries: int = 256) -> None:
        self.max_items = max_items
        self.max_entries = max_entries
        self._held: OrderedDict[ChannelKey, tuple[Stored, bytes]] = OrderedDict()
        self._items = 0

    def get(self, key: BlobKey, type_: str, blob: bytes | None) -> Stored | None:
        held = self._held.get(key[:3])
        if held is None or held[0].version != key[3] or held[1] != _digest(type_, blob):
            return None
        self._held.move_to_end(key[:3])
        return held[0]

    def put(self, key: ChannelKey, stored: Stored | None, type_: str, blob: bytes | None) -> None:
        if (old := self._held.pop(key, None)) is not None:
            self._items -= len(old[0].items)
        if stored is None or len(stored.items) > self.max_items:
            return
        self._held[key] = (stored, _digest(type_, blob))
        self._items += len(stored.items)
        while self._items > self.max_items or len(self._held) > self.max_entries:
            _, (dropped, _) = self._held.popitem(last=False)
            self._items -= len(dropped.items)


# Reading chains back --------------------------------------------------------

# Every row of the chains asked for: a chain's rows share its base, and lie between the
# base and the version read (versions are zero-padded counters, so they sort as text).
_CHAIN_ROWS_SQL = """
SELECT s.thread_id, s.checkpoint_ns, b.channel, b.version, b.type, b.blob
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
    AS s(thread_id, checkpoint_ns, channel, base, top)
JOIN checkpoint_blobs b
    ON b.thread_id = s.thread_id AND b.checkpoint_ns = s.checkpoint_ns
    AND b.channel = s.channel AND b.version BETWEEN s.base AND s.top
    AND (b.version = s.base OR (starts_with(b.type, 'trellis.delta|')
        AND split_part(b.type, '|', 3) = s.base))
"""


class Chains:
    """Whole values read back from delta rows, each row fetched and decoded once."""

    def __init__(self, serde: SerializerProtocol) -> None:
        self.serde = serde
        self.rows: dict[BlobKey, tuple[str, bytes | None]] = {}
        self._decoded: dict[BlobKey, list[object]] = {}

    def add(self, key: BlobKey, type_: str, blob: bytes | None) -> None:
        self.rows[key] = (type_, blob)

    async def fetch(self, cur: AsyncCursor[DictRow], keys: Iterable[BlobKey]) -> None:
        """Fetch the rows the values at `keys` are built from, in as few queries as it takes
        (one, unless a chain was written against a row outside its own base)."""
        wanted = list(keys)
        while missing := self._missing(wanted):
            columns: tuple[list[str], ...] = ([], [], [], [], [])
            for (thread_id, ns, channel, version), base in missing.items():
                for column, item in zip(
                    columns, (thread_id, ns, channel, base, version), strict=True
                ):
                    column.append(item)
            await cur.execute(_CHAIN_ROWS_SQL, columns)
            before = len(self.rows)
            for row in await cur.fetchall():
                key = (row["thread_id"], row["checkpoint_ns"], row["channel"], row["version"])
                self.rows.setdefault(key, (row["type"], row["blob"]))
            if len(self.rows) == before:
                (thread_id, ns, channel, version), _ = next(iter(missing.items()))
                raise BrokenChain(
                    f"checkpoint value {channel!r} version {version} of thread {thread_id} "
                    f"(namespace {ns!r}) is missing: a delta's parent row was deleted"
                )

    def _missing(self, keys: Iterable[BlobKey]) -> dict[BlobKey, str]:
        """The first absent row of each key's chain, with the base it is expected to share."""
        missing: dict[BlobKey, str] = {}
        for key in keys:
            base = key[3]
            while (row := self.rows.get(key)) is not None and (delta := parse(row[0])) is not None:
                base = delta.base
                key = (*key[:3], delta.parent)
            if row is None:
                missing[key] = base if base <= key[3] else key[3]
        return missing

    def load(self, key: BlobKey) -> object:
        """The value stored at `key`: a whole value as it was stored, a delta read back whole."""
        type_, blob = self.rows[key]
        if parse(type_) is None:
            return self.serde.loads_typed((type_, blob or b""))
        return self.value(key)

    def value(self, key: BlobKey) -> list[object]:
        """The whole list value stored at `key`."""
        suffixes: list[list[object]] = []
        while (delta := parse(self.rows[key][0])) is not None:
            suffixes.append(self._decode(key, delta.inner))
            key = (*key[:3], delta.parent)
        value = list(self._decode(key, self.rows[key][0]))
        for suffix in reversed(suffixes):
            value.extend(suffix)
        return value

    def stored(self, key: BlobKey, value: list[object]) -> Stored:
        """How the chain that ends at `key` (whose whole value is `value`) stands."""
        version, chain, chain_bytes = key[3], 0, 0
        while (delta := parse(self.rows[key][0])) is not None:
            chain, chain_bytes = chain + 1, chain_bytes + len(self.rows[key][1] or b"")
            key = (*key[:3], delta.parent)
        base_bytes = len(self.rows[key][1] or b"")
        return Stored(version, tuple(value), key[3], base_bytes, chain_bytes, chain)

    def _decode(self, key: BlobKey, type_: str) -> list[object]:
        if (decoded := self._decoded.get(key)) is None:
            loaded = self.serde.loads_typed((type_, self.rows[key][1] or b""))
            decoded = self._decoded[key] = list(loaded)
        return decoded
