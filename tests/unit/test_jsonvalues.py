"""JSON conversion of results: numpy in, NaN and objects out with the field named."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sweeplab.jsonvalues import NotJSONError, result_json, to_json_value


def test_plain_values_round_trip() -> None:
    value = {"loss": 0.25, "n": 3, "ok": True, "tag": "café", "none": None, "xs": [1, [2.5]]}
    assert json.loads(result_json(value)) == value


def test_text_is_compact() -> None:
    assert result_json({"a": 1, "b": [1, 2]}) == '{"a":1,"b":[1,2]}'


def test_numpy_scalars_and_arrays_are_converted() -> None:
    value = {
        "i": np.int64(7),
        "f": np.float32(0.5),
        "d": np.float64(0.1),
        "b": np.bool_(False),
        "v": np.arange(3),
        "m": np.array([[1.5, 2.0], [3.0, 4.0]]),
        "nested": {"x": [np.int8(1), np.float16(2.0)]},
    }
    assert json.loads(result_json(value)) == {
        "i": 7,
        "f": 0.5,
        "d": 0.1,
        "b": False,
        "v": [0, 1, 2],
        "m": [[1.5, 2.0], [3.0, 4.0]],
        "nested": {"x": [1, 2.0]},
    }


def test_tuples_become_lists() -> None:
    assert json.loads(result_json({"t": (1, 2)})) == {"t": [1, 2]}


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"model": object()}, "model"),
        ({"loss": float("nan")}, "loss"),
        ({"loss": float("-inf")}, "loss"),
        ({"loss": np.float64("nan")}, "loss"),
        ({"loss": np.float32("nan")}, "loss"),
        ({"a": {"b": [1, float("nan")]}}, "a.b[1]"),
        ({"a": {"b": [1, np.array([1.0, np.nan])]}}, "a.b[1][1]"),
        ({"a": {"b": [0, {1, 2}]}}, "a.b[1]"),
        ({"when": np.datetime64("2024-01-01")}, "when"),
    ],
)
def test_refused_values_name_their_path(value, path) -> None:
    with pytest.raises(NotJSONError, match=rf"^{re.escape(path)}: ") as info:
        result_json(value)
    assert info.value.path == path


def test_error_says_what_is_wrong() -> None:
    with pytest.raises(NotJSONError, match="NaN and infinity are not JSON"):
        result_json({"x": float("nan")})
    with pytest.raises(NotJSONError, match="a Widget is not JSON-representable"):

        class Widget:
            pass

        result_json({"x": Widget()})


def test_not_json_error_is_a_value_error() -> None:
    # callers that catch ValueError for bad values keep working
    assert issubclass(NotJSONError, ValueError)


def test_to_json_value_refuses_non_string_keys() -> None:
    with pytest.raises(NotJSONError, match=r"cfg\[1\]"):
        to_json_value({"cfg": {1: "a"}})


def test_to_json_value_of_a_bare_value_names_it_value() -> None:
    with pytest.raises(NotJSONError, match=r"^value: "):
        to_json_value(object())
