"""Hydra's sweep syntax on the command line: KEY=VALUES arguments to a grid."""

from __future__ import annotations

import pytest

from sweeplab.cli.overrides import parse_override, parse_overrides
from sweeplab.errors import OverrideError, UsageError


def values(argument: str) -> list:
    return parse_override(argument)[1]


def test_comma_list_of_ints() -> None:
    assert parse_override("a=1,2,3") == ("a", [1, 2, 3])
    assert all(type(v) is int for v in values("a=1,2,3"))


def test_numbers() -> None:
    assert values("a=-3,+4,0.5,.25,1e3,2.5e-3") == [-3, 4, 0.5, 0.25, 1000.0, 0.0025]
    assert type(values("a=1e3")[0]) is float


def test_true_false_null() -> None:
    assert values("a=true,false,null") == [True, False, None]
    assert values("a=True,FALSE,None") == [True, False, None]


def test_plain_words_are_strings() -> None:
    assert values("algo=ga,sa") == ["ga", "sa"]


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("name='a,b'", ["a,b"]),
        ('name="a,b"', ["a,b"]),
        ("name='a,b','c'", ["a,b", "c"]),
        ("name='x y'", ["x y"]),
        ("name='1'", ["1"]),  # quoted: a string, not a number
        ("name='true'", ["true"]),
        ("name='range(3)'", ["range(3)"]),
        ("name='('", ["("]),
    ],
)
def test_quoted_strings_stay_whole(argument, expected) -> None:
    assert values(argument) == expected


def test_range_stop() -> None:
    assert values("a=range(5)") == [0, 1, 2, 3, 4]


def test_range_start_stop_step() -> None:
    assert values("a=range(0,10,2)") == [0, 2, 4, 6, 8]
    assert values("a=range(2,5)") == [2, 3, 4]
    assert values("a=range(5,0,-2)") == [5, 3, 1]


def test_float_range() -> None:
    assert values("a=range(0,1,0.25)") == [0.0, 0.25, 0.5, 0.75]
    tenths = values("a=range(0,1,0.1)")
    assert tenths == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]  # no 0.30000000000000004
    assert values("a=range(1,0,-0.5)") == [1.0, 0.5]


def test_a_float_range_gives_floats_only() -> None:
    # 0 and 0.0 are different points: one float bound makes every value a float
    for argument in ("a=range(0,3.0)", "a=range(0,1,0.5)", "a=range(1.5)"):
        assert all(type(v) is float for v in values(argument)), argument
    assert values("a=range(0,3.0)") == [0.0, 1.0, 2.0]


def test_choice() -> None:
    assert values("algo=choice(ga,sa)") == ["ga", "sa"]
    assert values("a=choice(1, 2.5, 'x,y')") == [1, 2.5, "x,y"]


def test_bracket_list_is_one_value() -> None:
    assert values("layers=[64,64]") == [[64, 64]]
    space = parse_overrides(["layers=[64,64]"])
    assert len(space) == 1
    assert list(space) == [{"layers": [64, 64]}]


def test_several_lists_are_a_sweep_of_lists() -> None:
    space = parse_overrides(["layers=[64,64],[128]"])
    assert list(space) == [{"layers": [64, 64]}, {"layers": [128]}]
    assert values("a=[]") == [[]]
    assert values("a=[1,[2,'x,y']]") == [[1, [2, "x,y"]]]


def test_plain_value_is_a_constant() -> None:
    assert list(parse_overrides(["n=10", "algo=ga"])) == [{"n": 10, "algo": "ga"}]


def test_whitespace_around_commas_and_equals() -> None:
    assert parse_override("a = 1 , 2 ,3") == ("a", [1, 2, 3])
    assert values("a=choice( x , y )") == ["x", "y"]


def test_overrides_make_a_grid_in_argument_order() -> None:
    space = parse_overrides(["n=1,2", "algo=choice(ga,sa)", "lr=0.1"])
    assert len(space) == 4
    assert list(space) == [
        {"n": 1, "algo": "ga", "lr": 0.1},
        {"n": 1, "algo": "sa", "lr": 0.1},
        {"n": 2, "algo": "ga", "lr": 0.1},
        {"n": 2, "algo": "sa", "lr": 0.1},
    ]


def test_no_arguments_is_one_empty_point() -> None:
    assert list(parse_overrides([])) == [{}]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["n"], "is not KEY=VALUES"),
        (["=1"], "is not a parameter name"),
        (["1n=1"], "is not a parameter name"),
        (["a-b=1"], "is not a parameter name"),
        (["name='abc"], "unclosed quote"),
        (['name="abc'], "unclosed quote"),
        (["a=range(1,2"], "unclosed"),
        (["a=[1,2"], "unclosed"),
        (["a=1)"], "unbalanced"),
        (["a=[1,2)"], "quote it"),
        (["a=range(5,0)"], "empty"),
        (["a=range(0)"], "empty"),
        (["a=range(0,1,0)"], "step cannot be 0"),
        (["a=range()"], "1 to 3 numbers"),
        (["a=range(x)"], "1 to 3 numbers"),
        (["a=range(1,2,3,4)"], "1 to 3 numbers"),
        (["a=foo(1)"], "unknown function foo"),
        (["a=choice()"], "at least one value"),
        (["a=interval(0,1)"], "interval\\(\\) is not supported"),
        (["a=1", "a=2"], "given twice"),
        (["a=nan"], "quote it for a string"),
        (["a=inf"], "quote it for a string"),
        (["a={x:1}"], "quote it"),
    ],
)
def test_malformed_arguments_are_refused(arguments, message) -> None:
    with pytest.raises(OverrideError, match=message):
        parse_overrides(arguments)


def test_override_errors_are_usage_errors_naming_the_argument() -> None:
    with pytest.raises(UsageError, match="'a=foo\\(1\\)'"):
        parse_overrides(["a=foo(1)"])
