"""Strict checkpoint deserialization: checkpoints can only revive allowlisted classes.

LangGraph's `JsonPlusSerializer` revives msgpack "ext" payloads by importing a
module and calling a class (or `pickle.loads` with `pickle_fallback`). Whoever
can write a row to the checkpoint tables could then run code in Trellis. Here:

- no pickle, in either direction;
- msgpack constructor payloads (single/positional/keyword args, pydantic v1/v2,
  method calls) revive only classes on the allowlist: LangGraph's own safe set
  (datetime, UUID, LangChain messages, `Send`, `Interrupt`, `Command`, ...), the
  types found in every served graph's state, input, output, node and context
  schemas, and `CHECKPOINT_ALLOWED_TYPES`;
- anything else raises `CheckpointRejected` instead of being constructed or
  silently degraded, so a crafted row yields a clear error;
- legacy `json` payloads revive only LangGraph's safe constructors.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import NoReturn, Protocol, cast

import ormsgpack
from langgraph.checkpoint.serde import jsonplus
from langgraph.checkpoint.serde._msgpack import SAFE_MSGPACK_METHODS, SAFE_MSGPACK_TYPES
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from server.core.audit import security_event

TypeKey = tuple[str, str]

_CONSTRUCTOR_CODES = {
    jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG,
    jsonplus.EXT_CONSTRUCTOR_POS_ARGS,
    jsonplus.EXT_CONSTRUCTOR_KW_ARGS,
    jsonplus.EXT_PYDANTIC_V1,
    jsonplus.EXT_PYDANTIC_V2,
}


class CheckpointRejected(Exception):
    """A checkpoint names a class (or encoding) that Trellis refuses to revive."""


class _Rejections(threading.local):
    last: CheckpointRejected | None = None


_rejections = _Rejections()


def parse_type(spec: str) -> TypeKey:
    """`module:Name` or `module.Name` as an allowlist key."""
    module, sep, name = spec.partition(":")
    if not sep:
        module, _, name = spec.rpartition(".")
    if not module or not name:
        raise ValueError(f"{spec!r}: expected 'module:Name'")
    return (module, name)


ZLIB = "+zlib"
"""The suffix of a compressed value's type: `msgpack+zlib`."""
COMPRESS_FROM = 256
"""Bytes from which a serialised value is compressed."""
_COMPRESSIBLE = frozenset({"msgpack", "json"})


def _opt() -> int:
    return int(ormsgpack.OPT_NON_STR_KEYS)


class StrictSerializer(JsonPlusSerializer):
    """`JsonPlusSerializer` without pickle and with a refusing, extendable allowlist."""

    def __init__(self, allowed: Iterable[TypeKey] = ()) -> None:
        self._allowed: set[tuple[str, ...]] = set(SAFE_MSGPACK_TYPES) | {tuple(k) for k in allowed}
        super().__init__(
            pickle_fallback=False,
            allowed_json_modules=None,
            allowed_msgpack_modules=None,
            __unpack_ext_hook__=self._ext_hook,
        )

    @property
    def allowed(self) -> frozenset[tuple[str, ...]]:
        """The classes checkpoints may revive."""
        return frozenset(self._allowed)

    def allow(self, types: Iterable[tuple[str, ...] | type]) -> None:
        """Extend the allowlist in place (every graph shares this serializer)."""
        for item in types:
            if isinstance(item, type):
                self._allowed.add((item.__module__, item.__name__))
            else:
                self._allowed.add(tuple(item))

    def with_msgpack_allowlist(
        self, extra_allowlist: Iterable[tuple[str, ...] | type]
    ) -> JsonPlusSerializer:
        """A copy with more allowed types (LangGraph calls this in its own strict mode)."""
        clone = StrictSerializer()
        clone._allowed = set(self._allowed)
        clone.allow(extra_allowlist)
        return clone

    def dumps_typed(self, obj: object) -> tuple[str, bytes]:
        """Serialize without ever falling back to pickle; compress what compresses.

        Postgres compresses only values of more than ~2 KB, and with an LZ coder that
        finds no repeats in text of few symbols (hex, base64); a checkpoint's writes and
        appended messages are mostly smaller, so zlib does it here.
        """
        type_, data = super().dumps_typed(obj)
        if type_ == "pickle":
            raise CheckpointRejected("pickle serialization is disabled")
        if type_ in _COMPRESSIBLE and len(data) >= COMPRESS_FROM:
            packed = zlib.compress(data, 1)
            if len(packed) < len(data) * 0.9:
                return f"{type_}{ZLIB}", packed
        return type_, data

    def loads_typed(self, data: tuple[str, bytes]) -> object:
        """Deserialize, refusing pickle and anything not allowlisted."""
        type_ = data[0]
        if type_.endswith(ZLIB) and type_.removesuffix(ZLIB) in _COMPRESSIBLE:
            type_ = type_.removesuffix(ZLIB)
            data = (type_, zlib.decompress(data[1]))
        if type_ not in ("null", "bytes", "bytearray", "json", "msgpack"):
            security_event("checkpoint_rejected", encoding=str(type_)[:32])
            raise CheckpointRejected(f"checkpoint encoding {str(type_)[:32]!r} is refused")
        _rejections.last = None
        try:
            return super().loads_typed(data)
        except ValueError as exc:
            # ormsgpack replaces an ext_hook's exception with a bare ValueError.
            rejected: CheckpointRejected | None = _rejections.last
            if rejected is not None:
                raise rejected from exc
            raise
        finally:
            _rejections.last = None

    def _reviver(self, value: dict[str, object]) -> object:
        # lc:1 payloads go to LangChain's own reviver, limited to langchain-core classes.
        if value.get("lc") == 2 and value.get("type") == "constructor":
            ident = value.get("id")
            if not isinstance(ident, list) or len(ident) < 2:
                self._reject(None)
            key = (".".join(map(str, ident[:-1])), str(ident[-1]))
            if key not in self._allowed:
                self._reject(key)
            cls: Callable[..., object] = getattr(importlib.import_module(key[0]), key[1])
            args = cast("Iterable[object]", value.get("args") or ())
            kwargs = cast("Mapping[str, object]", value.get("kwargs") or {})
            return cls(*args, **kwargs)
        return super()._reviver(value)

    def _reject(self, key: tuple[str, ...] | None) -> NoReturn:
        name = ".".join(key) if key else "<malformed>"
        security_event("checkpoint_rejected", type=name[:200])
        rejected = CheckpointRejected(
            f"checkpoint contains {name[:200]}, which is not an allowed type "
            "(add it to CHECKPOINT_ALLOWED_TYPES if your graph stores it)"
        )
        _rejections.last = rejected
        raise rejected

    def _unpack(self, data: bytes) -> object:
        return ormsgpack.unpackb(data, ext_hook=self._ext_hook, option=_opt())

    def _ext_hook(self, code: int, data: bytes) -> object:
        if code == jsonplus.EXT_DELTA_SNAPSHOT:
            return _DeltaSnapshot(self._unpack(data))
        if code == jsonplus.EXT_NUMPY_ARRAY:
            return jsonplus._create_msgpack_ext_hook(None)(code, data)
        if code == jsonplus.EXT_METHOD_SINGLE_ARG:
            # (module, class, argument, method): checked against the safe methods, all names.
            call = cast("Sequence[str]", self._unpack(data))
            method = (call[0], call[1], call[3])
            if method not in SAFE_MSGPACK_METHODS:
                self._reject(method)
            return getattr(getattr(importlib.import_module(call[0]), call[1]), call[3])(call[2])
        if code not in _CONSTRUCTOR_CODES:
            self._reject((f"<msgpack extension {code}>",))
        tup = self._unpack(data)
        if not isinstance(tup, list | tuple) or len(tup) < 3:
            self._reject(None)
        key = (str(tup[0]), str(tup[1]))
        if key not in self._allowed:
            self._reject(key)
        return _revive(code, tup)


def _revive(code: int, tup: Sequence[object]) -> object:
    """Construct an allowlisted value exactly as LangGraph would."""
    module, name, payload = cast("tuple[str, str, object]", tup[:3])
    # `payload`: one argument, a list of them, or keywords, as `code` says.
    args = cast("Sequence[object]", payload)
    kwargs = cast("Mapping[str, object]", payload)
    try:
        if code == jsonplus.EXT_CONSTRUCTOR_POS_ARGS and (module, name) == (
            "langgraph.types",
            "Send",
        ):
            return jsonplus._send_from_args(args)
        cls: Callable[..., object] = getattr(importlib.import_module(module), name)
        if code == jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG:
            return cls(payload)
        if code == jsonplus.EXT_CONSTRUCTOR_POS_ARGS:
            return cls(*args)
        if code == jsonplus.EXT_CONSTRUCTOR_KW_ARGS:
            return cls(**kwargs)
        try:
            return cls(**kwargs)
        except Exception:
            method = "model_construct" if code == jsonplus.EXT_PYDANTIC_V2 else "construct"
            constructed: object = getattr(cls, method)(**kwargs)
            return constructed
    except CheckpointRejected:
        raise
    except Exception:
        return payload  # an allowed type that no longer fits its data: keep the data


class _Graph(Protocol):
    """A compiled graph, as far as the allowlist reads one."""

    def get_subgraphs(
        self, *, namespace: str | None = None, recurse: bool = False
    ) -> Iterator[tuple[str, object]]: ...


def graph_types(graph: _Graph) -> set[tuple[str, ...]]:
    """Classes a compiled graph (and its subgraphs) declares in its schemas and channels."""
    from langgraph._internal._serde import build_serde_allowlist

    found: set[tuple[str, ...]] = set()
    graphs: list[object] = [graph]
    with contextlib.suppress(Exception):
        graphs += [sub for _, sub in graph.get_subgraphs(recurse=True)]
    for g in graphs:
        builder = getattr(g, "builder", None)
        schemas: list[type[object] | None] = []
        if builder is not None:
            schemas += [
                getattr(builder, attr, None)
                for attr in ("state_schema", "input_schema", "output_schema", "context_schema")
            ]
            schemas += [getattr(n, "input_schema", None) for n in builder.nodes.values()]
        found |= build_serde_allowlist(
            schemas=[s for s in schemas if s is not None], channels=getattr(g, "channels", None)
        )
    return found
