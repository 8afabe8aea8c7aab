"""Spaces: lazy grids, cases, seeded samples, unions and products, canonical point keys."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import time
import tracemalloc

import numpy as np
import pytest

import sweeplab as sl
from sweeplab.errors import SpaceError
from sweeplab.space import PointKeys, canonical_point, trial_seed

# ---------------------------------------------------------------------------- grid


def test_grid_last_axis_varies_fastest() -> None:
    points = list(sl.grid(a=[1, 2], b=["x", "y", "z"]))
    assert points == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 2, "b": "z"},
    ]
    assert len(sl.grid(a=[1, 2], b=["x", "y", "z"])) == 6


def test_grid_is_reiterable() -> None:
    space = sl.grid(a=range(3), b=[True, False])
    assert list(space) == list(space)


def test_len_of_a_huge_grid_is_instant() -> None:
    t0 = time.perf_counter()
    space = sl.grid(a=range(1000), b=range(1000), c=range(1000), d=range(1000))
    assert len(space) == 10**12
    assert time.perf_counter() - t0 < 0.1


def test_iterating_a_million_point_grid_builds_no_list() -> None:
    space = sl.grid(a=range(1000), b=range(1000))
    assert len(space) == 10**6
    tracemalloc.start()
    try:
        first = list(itertools.islice(space, 5))
        _, peak_first = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        count = sum(1 for _ in itertools.islice(space, 200_000))
        _, peak_many = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first == [{"a": 0, "b": b} for b in range(5)]
    assert count == 200_000
    # a list of the million points would take hundreds of MB; streaming takes a few KB
    assert peak_first < 256 * 1024
    assert peak_many < 256 * 1024


def test_scalar_axis_is_a_constant() -> None:
    points = list(sl.grid(a=[1, 2], lr=0.1, name="ga", cfg={"k": 1}))
    assert points == [
        {"a": 1, "lr": 0.1, "name": "ga", "cfg": {"k": 1}},
        {"a": 2, "lr": 0.1, "name": "ga", "cfg": {"k": 1}},
    ]


def test_ranges_tuples_and_numpy_arrays_are_axes() -> None:
    assert [p["a"] for p in sl.grid(a=range(0, 10, 3))] == [0, 3, 6, 9]
    assert [p["a"] for p in sl.grid(a=(5, 6))] == [5, 6]
    values = [p["a"] for p in sl.grid(a=np.array([0.5, 1.5]))]
    assert values == [0.5, 1.5]
    assert all(type(v) is float for v in values)  # numpy scalars become Python values
    assert [p["a"] for p in sl.grid(a=np.arange(3))] == [0, 1, 2]


def test_zero_dimensional_numpy_array_is_a_constant() -> None:
    assert list(sl.grid(a=np.array(3), b=[1, 2])) == [{"a": 3, "b": 1}, {"a": 3, "b": 2}]


def test_numpy_scalar_is_a_constant() -> None:
    assert list(sl.grid(a=np.float64(2.5))) == [{"a": 2.5}]


@pytest.mark.parametrize("empty", [[], range(0), (), np.array([])])
def test_empty_axis_is_refused(empty) -> None:
    with pytest.raises(SpaceError, match="'a' is empty"):
        sl.grid(a=empty, b=[1])


# --------------------------------------------------------------------------- cases


def test_cases_keep_order_and_len() -> None:
    points = [{"n": 1}, {"n": 2, "algo": "sa"}]
    space = sl.cases(points)
    assert len(space) == 2
    assert list(space) == points
    assert space.names == {"n", "algo"}


def test_cases_hand_out_copies() -> None:
    space = sl.cases([{"n": 1}])
    next(iter(space))["n"] = 99
    assert list(space) == [{"n": 1}]


def test_cases_refuse_non_string_keys() -> None:
    with pytest.raises(SpaceError, match="case 1"):
        sl.cases([{"n": 1}, {2: 1}])


# -------------------------------------------------------------------------- sample


def _space(seed: int) -> sl.Space:
    return sl.sample(
        50,
        seed=seed,
        lr=sl.loguniform(1e-4, 1e-1),
        depth=sl.randint(2, 8),
        act=sl.choice(["relu", "tanh"]),
        x=sl.uniform(-1, 1),
    )


def test_sample_same_seed_same_points() -> None:
    space = _space(1)
    points = list(space)
    assert len(points) == len(space) == 50
    assert points == list(space)  # re-iterating draws the same points
    assert points == list(_space(1))  # so does a new space with the same seed


def test_sample_different_seed_different_points() -> None:
    assert list(_space(1)) != list(_space(2))


def test_sample_is_stable_across_versions() -> None:
    # Python's Mersenne Twister with an int seed is stable: pin one value of it.
    first = next(iter(sl.sample(1, seed=0, x=sl.uniform(0, 1))))
    assert first == {"x": 0.8444218515250481}


def test_sample_lists_are_choices_and_scalars_constants_even_for_n() -> None:
    points = list(sl.sample(200, seed=3, algo=["ga", "sa"], n=10))
    assert {p["algo"] for p in points} == {"ga", "sa"}
    assert {p["n"] for p in points} == {10}


def test_uniform_range() -> None:
    xs = [p["x"] for p in sl.sample(2000, seed=0, x=sl.uniform(2, 3))]
    assert all(2 <= x < 3 for x in xs)
    assert min(xs) < 2.05 and max(xs) > 2.95


def test_loguniform_range_spreads_over_decades() -> None:
    xs = [p["x"] for p in sl.sample(2000, seed=0, x=sl.loguniform(1e-4, 1e-1))]
    assert all(1e-4 <= x <= 1e-1 for x in xs)
    decades = {math.floor(math.log10(x)) for x in xs}
    assert decades == {-4, -3, -2}
    # log-uniform: each decade holds about a third of the points
    assert sum(x < 1e-3 for x in xs) > 500


def test_randint_excludes_high() -> None:
    xs = [p["x"] for p in sl.sample(2000, seed=0, x=sl.randint(2, 5))]
    assert set(xs) == {2, 3, 4}
    assert all(type(x) is int for x in xs)


def test_choice_draws_only_its_values() -> None:
    values = ["a", 1, None, [1, 2]]
    xs = [p["x"] for p in sl.sample(500, seed=0, x=sl.choice(values))]
    assert all(x in values for x in xs)
    assert len({json.dumps(x) for x in xs}) == 4


@pytest.mark.parametrize(
    "make",
    [
        lambda: sl.uniform(1, 1),
        lambda: sl.loguniform(0, 1),
        lambda: sl.loguniform(2, 1),
        lambda: sl.randint(3, 3),
        lambda: sl.choice([]),
        lambda: sl.sample(-1, x=1),
    ],
)
def test_bad_distributions_are_refused(make) -> None:
    with pytest.raises(SpaceError):
        make()


# ------------------------------------------------------------------ union, product


def test_union_is_a_then_b() -> None:
    a = sl.grid(n=[1, 2])
    b = sl.cases([{"n": 3, "algo": "sa"}])
    u = a + b
    assert len(u) == 3
    assert list(u) == [{"n": 1}, {"n": 2}, {"n": 3, "algo": "sa"}]
    assert u.names == {"n", "algo"}


def test_product_merges_every_pair() -> None:
    p = sl.grid(n=[1, 2]) * sl.cases([{"algo": "ga"}, {"algo": "sa", "t": 0.5}])
    assert len(p) == 4
    assert list(p) == [
        {"n": 1, "algo": "ga"},
        {"n": 1, "algo": "sa", "t": 0.5},
        {"n": 2, "algo": "ga"},
        {"n": 2, "algo": "sa", "t": 0.5},
    ]


def test_product_len_is_lazy() -> None:
    p = sl.grid(a=range(10**4), b=range(10**4)) * sl.grid(c=range(10**4))
    assert len(p) == 10**12


def test_product_with_shared_names_is_refused() -> None:
    with pytest.raises(SpaceError, match=r"\['n'\]"):
        sl.grid(n=[1], m=[2]) * sl.cases([{"n": 3}])


def test_combining_with_a_non_space_is_refused() -> None:
    points = [{"n": 2}]
    with pytest.raises(SpaceError, match=r"sl\.grid"):
        sl.grid(n=[1]) + points


# ------------------------------------------------------------------------ witnesses


def _covers(space: sl.Space, axes: dict[str, list]) -> None:
    witnesses = space.witnesses()
    for name, values in axes.items():
        seen = [w[name] for w in witnesses if name in w]
        for v in values:
            assert v in seen, f"{name}={v!r} has no witness"


def test_grid_witnesses_cover_every_value() -> None:
    axes = {"a": [1, 2, 3, 4, 5], "b": ["x"], "c": [None, [1], {"k": 2}]}
    space = sl.grid(**axes)
    assert all(set(w) == set(axes) for w in space.witnesses())
    _covers(space, axes)


def test_union_and_product_witnesses_cover_every_value() -> None:
    space = (sl.grid(a=[1, 2, 3]) + sl.cases([{"a": 4, "z": 0}])) * sl.grid(b=[7, 8])
    _covers(space, {"a": [1, 2, 3, 4], "b": [7, 8], "z": [0]})


def test_sample_witnesses_cover_every_choice() -> None:
    space = sl.sample(3, seed=0, act=sl.choice(["relu", "tanh", "gelu"]), lr=sl.uniform(0, 1))
    _covers(space, {"act": ["relu", "tanh", "gelu"]})
    assert all(set(w) == {"act", "lr"} for w in space.witnesses())


# ------------------------------------------------------------------- canonical keys


def test_dict_order_does_not_change_the_key() -> None:
    text_ab, key_ab = canonical_point({"a": 1, "b": {"x": 1, "y": 2}})
    text_ba, key_ba = canonical_point({"b": {"y": 2, "x": 1}, "a": 1})
    assert key_ab == key_ba
    # the stored text keeps the point's own order
    assert text_ab == '{"a":1,"b":{"x":1,"y":2}}'
    assert text_ba == '{"b":{"y":2,"x":1},"a":1}'


def test_one_float_true_and_string_are_four_points() -> None:
    keys = {canonical_point({"a": v})[1] for v in (1, 1.0, True, "1")}
    assert len(keys) == 4


@pytest.mark.parametrize(
    ("numpy_value", "python_value"),
    [
        (np.int64(3), 3),
        (np.int32(-2), -2),
        (np.float64(0.25), 0.25),
        (np.float32(0.5), 0.5),
        (np.bool_(True), True),
        (np.str_("ga"), "ga"),
        (np.array([1, 2]), [1, 2]),
    ],
)
def test_numpy_values_key_like_python_values(numpy_value, python_value) -> None:
    assert canonical_point({"a": numpy_value}) == canonical_point({"a": python_value})


@pytest.mark.parametrize(
    ("point", "where"),
    [
        ({"lr": float("nan")}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"model": object()}, "model"),
        ({"cfg": {"layers": [1, {1, 2}]}}, "cfg.layers[1]"),
    ],
)
def test_non_json_parameters_are_refused_by_name(point, where) -> None:
    with pytest.raises(SpaceError, match=rf"parameter {re.escape(where)}:"):
        canonical_point(point)


def test_key_is_the_documented_hash() -> None:
    point = {"b": "x", "a": 1}
    # sha256 of '{"a":1,"b":"x"}' (sorted keys, no spaces), first 32 hex characters,
    # computed outside sweeplab; a change here orphans every store already written
    assert canonical_point(point)[1] == "ecf9e98ec0641e23113ff3ce8bdc78d0"
    text = json.dumps(point, sort_keys=True, separators=(",", ":"))
    assert canonical_point(point)[1] == hashlib.sha256(text.encode()).hexdigest()[:32]


def test_keys_of_nested_and_unicode_points_follow_the_rule() -> None:
    point = {"name": "café", "xs": [1.5, None, False], "cfg": {"z": 1, "a": "é"}}
    text = json.dumps(point, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_point(point)[1] == hashlib.sha256(text.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------ trial seeds


def test_trial_seed_is_deterministic_and_distinct() -> None:
    key = canonical_point({"a": 1})[1]
    assert trial_seed("exp", key, 0) == trial_seed("exp", key, 0)
    assert trial_seed("exp", key, 0) != trial_seed("exp", key, 1)
    assert trial_seed("exp", key, 0) != trial_seed("other", key, 0)
    assert trial_seed("exp", key, 0) != trial_seed("exp", canonical_point({"a": 2})[1], 0)


def test_trial_seeds_fit_in_32_bits() -> None:
    seeds = [trial_seed("exp", str(k), r) for k in range(50) for r in range(10)]
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)
    assert len(set(seeds)) == len(seeds)
    np.random.default_rng(max(seeds))  # numpy accepts them
    np.random.seed(max(seeds))


# ------------------------------------------------------------ keys of a stream of points


def _random_scalar(rng) -> object:
    return rng.choice(
        [
            rng.randint(-(10**20), 10**20),
            rng.random() * 10 ** rng.randint(-300, 300),
            -0.0,
            rng.choice(["", "x", "café", 'quote"back\\slash', "tab\t\u2028", "\U0001f600"]),
            True,
            False,
            None,
        ]
    )


def test_point_keys_give_canonical_point_text_and_key_for_every_point() -> None:
    import random

    rng = random.Random(5)
    names = ["a", "b", "zeta", "Alpha", "é", "x y", "1"]
    points = []
    for _ in range(3000):
        chosen = rng.sample(names, rng.randint(0, 4))  # shapes and orders change often
        point = {n: _random_scalar(rng) for n in chosen}
        if rng.random() < 0.1:
            point[rng.choice(names)] = rng.choice([[1, 2.5], {"k": None}, np.int64(3)])
        points.append(point)
    keys = PointKeys()
    for point in points:
        assert keys(point) == canonical_point(point), point


@pytest.mark.parametrize(
    ("point", "where"),
    [({"a": 1, "lr": float("nan")}, "lr"), ({"lr": float("-inf")}, "lr"), ({"m": object()}, "m")],
)
def test_point_keys_refuse_what_canonical_point_refuses(point, where) -> None:
    keys = PointKeys()
    keys({"a": 1, "lr": 0.1})  # a good point of the same shape first
    with pytest.raises(SpaceError, match=rf"parameter {re.escape(where)}:"):
        keys(point)
