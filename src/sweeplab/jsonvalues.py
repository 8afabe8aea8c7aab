"""JSON conversion shared by parameter points and trial results.

Points and results are stored as JSON text. numpy scalars and arrays are converted
on the way in; anything else that JSON cannot hold is refused with a message that
names the offending field, so the user knows what to change.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

# Canonical text: sorted keys, no spaces, no NaN. Python's float repr is the shortest
# round-tripping form since 3.1, so the same point gives the same text everywhere.
_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


class NotJSONError(ValueError):
    """A value cannot be represented in JSON; ``path`` names where it sits."""

    def __init__(self, path: str, value: Any, why: str = "") -> None:
        self.path = path
        self.value = value
        kind = type(value).__name__
        detail = why or f"a {kind} is not JSON-representable"
        super().__init__(f"{path or 'value'}: {detail} ({value!r:.60})")


def to_json_value(value: Any, path: str = "") -> Any:
    """Return ``value`` made of plain JSON types (dict, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise NotJSONError(path, value, "NaN and infinity are not JSON")
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise NotJSONError(f"{path}[{k!r}]", k, "keys must be strings")
            out[k] = to_json_value(v, f"{path}.{k}" if path else k)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, without importing numpy
    if tolist is not None and type(value).__module__ == "numpy":
        return to_json_value(tolist(), path)
    raise NotJSONError(path, value)


def canonical_json(value: Any) -> str:
    """Canonical JSON text of an already converted value."""
    return _canonical.encode(value)


_ordered = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """JSON text of a value of plain JSON types (compact, key order kept)."""
    return _ordered.encode(value)


loads = json.loads


def loads_each(texts: Sequence[str | None]) -> tuple[Any, ...]:
    """``loads`` of every text (None stays None), parsed as one JSON array: one call into
    the C parser for a hundred thousand values instead of a hundred thousand calls."""
    return tuple(json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]"))


def _numpy_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist is not None and type(value).__module__ == "numpy":
        return tolist()
    raise TypeError


_fast = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_numpy_default
)


def result_json(value: Any) -> str:
    """JSON text of a trial's result; raises NotJSONError naming the bad field.

    The common case (plain dicts of numbers) takes the C encoder alone; only a
    failure walks the value in Python to find which field is at fault.
    """
    try:
        return _fast.encode(value)
    except (TypeError, ValueError):
        return dumps(to_json_value(value))
