"""Parameter spaces: grids, explicit cases, random samples, and their unions and products.

A space is a lazy, re-iterable sequence of points (dicts of parameter values) whose
length is known without materialising it, so a million-point grid costs no memory
until it is streamed into the store. Every point has a canonical key: the SHA-256 of
its canonical JSON (sorted keys, exact number text), so ``{"a": 1, "b": 2}`` and
``{"b": 2, "a": 1}`` are one point while ``1``, ``1.0``, ``True`` and ``"1"`` are four.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sweeplab.errors import SpaceError
from sweeplab.jsonvalues import NotJSONError, canonical_json, dumps, to_json_value

Point = dict[str, Any]


class Space(ABC):
    """A lazy sequence of parameter points. ``a + b`` is the union, ``a * b`` the product."""

    @abstractmethod
    def __iter__(self) -> Iterator[Point]: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def names(self) -> frozenset[str]:
        """Every parameter name that some point of the space sets."""

    @abstractmethod
    def witnesses(self) -> list[Point]:
        """A few points that hold, between them, every value and every key set of the space.

        Checking them checks the whole space, so bad input is refused before a write.
        """

    def __add__(self, other: Space) -> Space:
        _check_space(other)
        return Union(self, other)

    def __mul__(self, other: Space) -> Space:
        _check_space(other)
        return Product(self, other)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self)} points over {sorted(self.names)}>"


def _check_space(other: object) -> None:
    if not isinstance(other, Space):
        raise SpaceError(
            f"cannot combine a space with a {type(other).__name__}: "
            "wrap it in sl.grid(...), sl.cases(...) or sl.sample(...)"
        )


def _axis_values(name: str, value: Any) -> list[Any]:
    """An axis is a sequence of values; a scalar (or a dict) is a one-value axis."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        return [value]
    tolist = getattr(value, "tolist", None)  # numpy arrays: one element per value
    if tolist is not None:
        value = tolist()
        if not isinstance(value, list):  # a 0-d array is one value, not an axis
            return [value]
    values = list(value)
    if not values:
        raise SpaceError(f"grid axis {name!r} is empty: give it at least one value")
    return values


class Grid(Space):
    """The cartesian product of named axes; the last axis varies fastest."""

    def __init__(self, axes: Mapping[str, Any]) -> None:
        self._axes = {name: _axis_values(name, values) for name, values in axes.items()}

    def __iter__(self) -> Iterator[Point]:
        names = list(self._axes)
        for combo in itertools.product(*self._axes.values()):
            yield dict(zip(names, combo))

    def __len__(self) -> int:
        return math.prod(len(v) for v in self._axes.values())

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._axes)

    def witnesses(self) -> list[Point]:
        longest = max((len(v) for v in self._axes.values()), default=1)
        return [
            {name: values[min(i, len(values) - 1)] for name, values in self._axes.items()}
            for i in range(longest)
        ]


class Cases(Space):
    """An explicit list of points."""

    def __init__(self, points: Iterable[Mapping[str, Any]]) -> None:
        self._points = [dict(p) for p in points]
        for i, p in enumerate(self._points):
            if not all(isinstance(k, str) for k in p):
                raise SpaceError(f"case {i} has a key that is not a string: use names as keys")

    def __iter__(self) -> Iterator[Point]:
        return (dict(p) for p in self._points)

    def __len__(self) -> int:
        return len(self._points)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(k for p in self._points for k in p)

    def witnesses(self) -> list[Point]:
        return list(self)


class Distribution(ABC):
    """A one-dimensional distribution that ``sample`` draws from."""

    @abstractmethod
    def draw(self, rng: random.Random) -> Any: ...


class _Uniform(Distribution):
    def __init__(self, low: float, high: float) -> None:
        if not low < high:
            raise SpaceError(f"uniform({low}, {high}): low must be below high")
        self.low, self.high = float(low), float(high)

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def __repr__(self) -> str:
        return f"uniform({self.low}, {self.high})"


class _LogUniform(Distribution):
    def __init__(self, low: float, high: float) -> None:
        if not 0 < low < high:
            raise SpaceError(f"loguniform({low}, {high}): needs 0 < low < high")
        self.low, self.high = float(low), float(high)

    def draw(self, rng: random.Random) -> float:
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))

    def __repr__(self) -> str:
        return f"loguniform({self.low}, {self.high})"


class _RandInt(Distribution):
    def __init__(self, low: int, high: int) -> None:
        if not int(low) < int(high):
            raise SpaceError(f"randint({low}, {high}): low must be below high (high is excluded)")
        self.low, self.high = int(low), int(high)

    def draw(self, rng: random.Random) -> int:
        return rng.randrange(self.low, self.high)

    def __repr__(self) -> str:
        return f"randint({self.low}, {self.high})"


class _Choice(Distribution):
    def __init__(self, values: Iterable[Any]) -> None:
        self.values = list(values)
        if not self.values:
            raise SpaceError("choice() needs at least one value")

    def draw(self, rng: random.Random) -> Any:
        return self.values[rng.randrange(len(self.values))]

    def __repr__(self) -> str:
        return f"choice({self.values!r})"


def uniform(low: float, high: float) -> Distribution:
    """Floats drawn uniformly from [low, high)."""
    return _Uniform(low, high)


def loguniform(low: float, high: float) -> Distribution:
    """Floats whose logarithm is uniform on [log low, log high); needs 0 < low < high."""
    return _LogUniform(low, high)


def randint(low: int, high: int) -> Distribution:
    """Integers drawn uniformly from low (included) to high (excluded), as numpy does."""
    return _RandInt(low, high)


def choice(values: Iterable[Any]) -> Distribution:
    """One of ``values``, each equally likely."""
    return _Choice(values)


class Sample(Space):
    """``n`` points drawn from independent distributions with a fixed seed.

    The same ``n``, ``seed`` and distributions give the same points on every machine
    (Python's Mersenne Twister is stable), so adding a sample twice adds nothing.
    """

    def __init__(self, n: int, seed: int, dists: Mapping[str, Any]) -> None:
        if int(n) < 0:
            raise SpaceError(f"sample(n={n}): n must be zero or more")
        self._n, self._seed = int(n), seed
        self._dists = {
            name: d if isinstance(d, Distribution) else _constant_or_choice(d)
            for name, d in dists.items()
        }

    def __iter__(self) -> Iterator[Point]:
        rng = random.Random(self._seed)
        for _ in range(self._n):
            yield {name: d.draw(rng) for name, d in self._dists.items()}

    def __len__(self) -> int:
        return self._n

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._dists)

    def witnesses(self) -> list[Point]:
        if self._n == 0:
            return []
        first = next(iter(self))
        points = [first]
        for name, d in self._dists.items():
            if isinstance(d, _Choice):
                points.extend({**first, name: v} for v in d.values)
        return points


class _Constant(Distribution):
    def __init__(self, value: Any) -> None:
        self.value = value

    def draw(self, rng: random.Random) -> Any:
        return self.value


def _constant_or_choice(value: Any) -> Distribution:
    if isinstance(value, (list, tuple, range)):
        return _Choice(value)
    return _Constant(value)


class Union(Space):
    """Every point of ``a``, then every point of ``b`` (a point in both is stored once)."""

    def __init__(self, a: Space, b: Space) -> None:
        self._parts = (a, b)

    def __iter__(self) -> Iterator[Point]:
        return itertools.chain.from_iterable(self._parts)

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    @property
    def names(self) -> frozenset[str]:
        return self._parts[0].names | self._parts[1].names

    def witnesses(self) -> list[Point]:
        return self._parts[0].witnesses() + self._parts[1].witnesses()


class Product(Space):
    """Every point of ``a`` merged with every point of ``b``; they may not share names."""

    def __init__(self, a: Space, b: Space) -> None:
        shared = a.names & b.names
        if shared:
            raise SpaceError(
                f"cannot multiply spaces that both set {sorted(shared)}: "
                "use + for a union, or rename one axis"
            )
        self._a, self._b = a, b

    def __iter__(self) -> Iterator[Point]:
        for p in self._a:
            for q in self._b:
                yield {**p, **q}

    def __len__(self) -> int:
        return len(self._a) * len(self._b)

    @property
    def names(self) -> frozenset[str]:
        return self._a.names | self._b.names

    def witnesses(self) -> list[Point]:
        wa, wb = self._a.witnesses(), self._b.witnesses()
        if not wa or not wb:
            return []
        return [
            {**wa[min(i, len(wa) - 1)], **wb[min(i, len(wb) - 1)]}
            for i in range(max(len(wa), len(wb)))
        ]


def grid(**axes: Any) -> Space:
    """The cartesian product of ``axes``: lists, ranges, numpy arrays; a scalar is a constant."""
    return Grid(axes)


def cases(points: Iterable[Mapping[str, Any]]) -> Space:
    """An explicit list of points, one dict each."""
    return Cases(points)


def sample(n: int, /, seed: int = 0, **distributions: Any) -> Space:
    """``n`` random points; each keyword is a distribution, a list (a choice) or a constant.

    ``n`` is positional-only so that a parameter may be called ``n``.
    """
    return Sample(n, seed, distributions)


def as_space(value: Space | Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> Space:
    """Accept a space, one dict (one point) or a list of dicts (cases)."""
    if isinstance(value, Space):
        return value
    if isinstance(value, Mapping):
        return Cases([value])
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return Cases(value)
    raise SpaceError(
        f"cannot add a {type(value).__name__}: pass sl.grid(...), sl.cases([...]) or sl.sample(...)"
    )


_SCALARS = frozenset({str, int, float, bool, type(None)})
_encode_str = json.encoder.encode_basestring  # JSON string literal, non-ASCII kept as is


def _scalar_json(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if type(value) is str:
        return _encode_str(value)
    if type(value) is float and not math.isfinite(value):
        raise NotJSONError("", value, "NaN and infinity are not JSON")
    return repr(value)  # int and float: exactly what the json module writes


def canonical_point(point: Mapping[str, Any]) -> tuple[str, str]:
    """Return (JSON text in the point's own order, canonical key) of a point.

    The key is the SHA-256 of the canonical JSON (sorted keys, no spaces, Python's
    shortest float text), cut to 32 hex digits. Raises SpaceError if the point is not
    JSON-representable.
    """
    try:
        if all(type(v) in _SCALARS for v in point.values()):
            # the common point holds only scalars: write the JSON directly, much faster
            # than the encoder and byte for byte the same text
            parts = {k: f"{_encode_str(k)}:{_scalar_json(v)}" for k, v in point.items()}
            text = "{" + ",".join(parts.values()) + "}"
            canonical = "{" + ",".join(parts[k] for k in sorted(parts)) + "}"
        else:
            value = to_json_value(dict(point))
            text, canonical = dumps(value), canonical_json(value)
    except NotJSONError as exc:
        if not exc.path:
            exc = NotJSONError(
                next(k for k, v in point.items() if v is exc.value),
                exc.value,
                "NaN and infinity are not JSON",
            )
        raise SpaceError(
            f"parameter {exc}: parameters must be JSON values "
            "(str, int, float, bool, None, lists and dicts of them)"
        ) from exc
    return text, hashlib.sha256(canonical.encode()).hexdigest()[:32]


def trial_seed(experiment: str, key: str, repetition: int) -> int:
    """The seed of one repetition of one point: stable, in [0, 2**32) so numpy accepts it."""
    digest = hashlib.sha256(f"{experiment}\x00{key}\x00{repetition}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _finite_float(value: float) -> str:
    if not math.isfinite(value):
        raise NotJSONError("", value, "NaN and infinity are not JSON")
    return repr(value)


#: JSON text of a scalar by its exact type, as ``_scalar_json`` writes it
_SCALAR_TEXT = {
    int: int.__repr__,
    str: _encode_str,
    float: _finite_float,
    bool: lambda v: "true" if v else "false",
    type(None): lambda v: "null",
}


class PointKeys:
    """``canonical_point`` for a stream of points, as fast as adding a million needs.

    What depends only on the parameter names (their JSON text, their sorted order) is
    worked out once per run of points with the same names; the text and the key are
    byte for byte those of ``canonical_point``, which any other point falls back to.
    """

    def __init__(self) -> None:
        self._names: tuple[str, ...] | None = None
        self._prefixes: list[str] = []
        self._order: list[int] | None = None

    def __call__(self, point: Mapping[str, Any]) -> tuple[str, str]:
        names = tuple(point)
        if names != self._names:
            self._names = names
            self._prefixes = [f"{_encode_str(k)}:" for k in names]
            order = sorted(range(len(names)), key=names.__getitem__)
            self._order = None if order == list(range(len(names))) else order
        try:
            parts = [p + _SCALAR_TEXT[type(v)](v) for p, v in zip(self._prefixes, point.values())]
        except (KeyError, NotJSONError):  # a list, a dict, a numpy value, NaN
            return canonical_point(point)  # which raises the error that names the parameter
        text = "{" + ",".join(parts) + "}"
        canonical = text
        if self._order is not None:  # the names are not in sorted order
            canonical = "{" + ",".join([parts[i] for i in self._order]) + "}"
        return text, hashlib.sha256(canonical.encode()).hexdigest()[:32]
