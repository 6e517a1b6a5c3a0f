"""Authorization filters (`{"owner": "u1"}`, `{"k": {"$eq": v}}`, `{"k": {"$contains": v}}`)
as JSONB containment, which is how Trellis already searches metadata."""

from __future__ import annotations

from collections.abc import Mapping

_UNSATISFIABLE = object()


class UnsupportedFilter(ValueError):
    """The filter uses an operator Trellis cannot honour (it fails closed)."""


def to_containment(filter_: Mapping[str, object]) -> dict[str, object]:
    """The metadata containment object equivalent to a handler's filter."""
    out: dict[str, object] = {}
    for key, condition in filter_.items():
        if isinstance(condition, dict) and any(str(k).startswith("$") for k in condition):
            if set(condition) == {"$eq"}:
                value = condition["$eq"]
            elif set(condition) == {"$contains"}:
                wanted = condition["$contains"]
                value = wanted if isinstance(wanted, list) else [wanted]
            else:
                raise UnsupportedFilter(f"unsupported filter operator in {condition!r}")
        else:
            value = condition
        merged = merge({key: value}, out)
        if merged is None:
            return {key: _UNSATISFIABLE}
        out = merged
    return out


def _merge_value(a: object, b: object) -> object:
    if a is _UNSATISFIABLE or b is _UNSATISFIABLE:
        return _UNSATISFIABLE
    if isinstance(a, dict) and isinstance(b, dict):
        merged = merge(a, b)
        return _UNSATISFIABLE if merged is None else merged
    if isinstance(a, list) and isinstance(b, list):
        return [*a, *(item for item in b if item not in a)]
    return a if _same_scalar(a, b) else _UNSATISFIABLE


def merge(a: Mapping[str, object], b: Mapping[str, object]) -> dict[str, object] | None:
    """A containment object that holds exactly when both hold; None when none can."""
    out = dict(a)
    for key, value in b.items():
        if key in out:
            value = _merge_value(out[key], value)
            if value is _UNSATISFIABLE:
                return None
        out[key] = value
    if any(value is _UNSATISFIABLE for value in out.values()):
        return None
    return out


def contains(document: object, wanted: object) -> bool:
    """Whether `document @> wanted` in JSONB terms (nested objects, arrays as sets)."""
    if wanted is _UNSATISFIABLE:
        return False
    if isinstance(wanted, dict):
        return isinstance(document, dict) and all(
            key in document and contains(document[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(document, list) and all(
            any(contains(item, w) for item in document) for w in wanted
        )
    return _same_scalar(document, wanted)


def _same_scalar(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)
