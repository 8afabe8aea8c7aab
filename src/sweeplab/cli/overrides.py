"""Hydra's sweep syntax for ``KEY=VALUES`` command-line arguments.

    n=10                  a constant (int, float, true/false, null, or a string)
    n=10,20,40            a sweep over three values
    n=range(0,10,2)       range(stop), range(start,stop) or range(start,stop,step); floats too
    algo=choice(ga,sa)    a sweep, written as Hydra's choice()
    name='a,b'  "x y"     quoted: one string, commas and all
    layers=[64,64]        one list value (not a sweep)

Each argument becomes one axis of a grid; the grid is their product.
"""

from __future__ import annotations

import re
from typing import Any

from sweeplab.errors import OverrideError
from sweeplab.space import Space, grid

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$", re.I)
_CALL = re.compile(r"^(\w+)\((.*)\)$", re.S)


def parse_overrides(arguments: list[str]) -> Space:
    """The grid that ``KEY=VALUES`` arguments describe."""
    axes: dict[str, list[Any]] = {}
    for argument in arguments:
        key, values = parse_override(argument)
        if key in axes:
            raise OverrideError(f"{key!r} is given twice: merge them into one {key}=a,b,c")
        axes[key] = values
    # a one-element axis keeps list values whole: grid() would read a bare list as an axis
    return grid(**{key: values for key, values in axes.items()})


def parse_override(argument: str) -> tuple[str, list[Any]]:
    """``"n=1,2"`` -> ``("n", [1, 2])``; every value list is an axis."""
    key, sep, text = argument.partition("=")
    key = key.strip()
    if not sep:
        raise OverrideError(f"{argument!r} is not KEY=VALUES: write e.g. n=10,20,40 or algo=ga")
    if not _KEY.match(key):
        raise OverrideError(f"{key!r} in {argument!r} is not a parameter name")
    try:
        return key, _values(text.strip())
    except OverrideError as exc:
        raise OverrideError(f"cannot read {argument!r}: {exc}") from None


def _values(text: str) -> list[Any]:
    parts = _split(text)
    if len(parts) > 1:
        return [_scalar(p) for p in parts]
    call = _CALL.match(text)
    if call:
        return _call(call.group(1), call.group(2))
    return [_scalar(text)]


def _call(name: str, inner: str) -> list[Any]:
    args = [_scalar(p) for p in _split(inner)] if inner.strip() else []
    if name == "choice":
        if not args:
            raise OverrideError("choice() needs at least one value")
        return args
    if name == "range":
        if not 1 <= len(args) <= 3 or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in args
        ):
            raise OverrideError("range() takes 1 to 3 numbers: range(stop), range(start,stop,step)")
        start, stop, step = (
            (0, args[0], 1) if len(args) == 1 else (*args[:2], args[2] if len(args) == 3 else 1)
        )
        if step == 0:
            raise OverrideError("range() step cannot be 0")
        if all(isinstance(a, int) for a in (start, stop, step)):
            values = list(range(start, stop, step))
        else:
            # one float among them makes every value a float, as in Hydra: 0 and 0.0
            # are different points
            start, stop, step = float(start), float(stop), float(step)
            count = max(0, int(-(-(stop - start) // step)))
            values = [round(start + i * step, 12) for i in range(count)]
        if not values:
            raise OverrideError(f"range({', '.join(map(str, args))}) is empty")
        return values
    if name in ("interval", "glob", "tag", "shuffle", "sort"):
        raise OverrideError(f"{name}() is not supported: list the values, or use range()/choice()")
    raise OverrideError(f"unknown function {name}(): use choice(...) or range(...)")


def _split(text: str) -> list[str]:
    """Split on commas that are outside quotes, brackets and parentheses."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise OverrideError(f"unbalanced {ch!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if quote:
        raise OverrideError(f"unclosed quote {quote}")
    if depth:
        raise OverrideError("unclosed bracket or parenthesis")
    parts.append(text[start:].strip())
    return parts


def _scalar(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(p) for p in _split(inner)] if inner else []
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered in ("null", "none", "~"):
        return None
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise OverrideError(f"{text} is not a value a store can hold; quote it for a string")
        return value
    if any(c in text for c in "()[]{}"):
        raise OverrideError(f"cannot read {text!r}: quote it if it is a string")
    return text
