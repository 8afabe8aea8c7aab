"""Finding the user's function: file and module targets, signatures, shipping by value."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sweeplab.errors import TargetError
from sweeplab.target import FunctionRef, Signature, resolve_target


@pytest.fixture
def write_module(tmp_path, monkeypatch) -> Iterator[Callable[[str], Path]]:
    """Write a uniquely named module in tmp_path; sys.path and sys.modules are restored."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    made: list[str] = []

    def write(source: str) -> Path:
        stem = f"study_{uuid.uuid4().hex[:10]}"
        path = tmp_path / f"{stem}.py"
        path.write_text(textwrap.dedent(source))
        made.append(stem)
        return path

    yield write
    for stem in made:
        sys.modules.pop(stem, None)


STUDY = """
    def simulate(n, algo="ga", trial=None):
        return {"y": n * 2, "algo": algo}

    value = 3
"""

# ---------------------------------------------------------------------- resolve_target


def test_file_target(write_module) -> None:
    path = write_module(STUDY)
    fn = resolve_target(f"{path}:simulate")
    assert fn(n=2) == {"y": 4, "algo": "ga"}
    # other processes load the same file
    assert fn.__sweeplab_target__ == f"{path.resolve()}:simulate"
    assert FunctionRef.of(fn).target == f"{path.resolve()}:simulate"


def test_file_target_imports_its_neighbours(write_module, tmp_path) -> None:
    helper = write_module("def double(x):\n    return 2 * x\n")
    path = write_module(f"from {helper.stem} import double\n\ndef f(x):\n    return double(x)\n")
    assert resolve_target(f"{path}:f")(x=4) == 8


def test_module_target() -> None:
    assert resolve_target("json:dumps") is json.dumps
    assert resolve_target("os.path:join") is __import__("os").path.join


def test_missing_file(tmp_path) -> None:
    with pytest.raises(TargetError, match="no file"):
        resolve_target(f"{tmp_path / 'nope.py'}:f")


def test_missing_function_in_file(write_module) -> None:
    path = write_module(STUDY)
    with pytest.raises(TargetError, match="has no function 'nope'"):
        resolve_target(f"{path}:nope")


def test_target_that_is_not_a_function(write_module) -> None:
    path = write_module(STUDY)
    with pytest.raises(TargetError, match="is a int, not a function"):
        resolve_target(f"{path}:value")


def test_missing_function_in_module() -> None:
    with pytest.raises(TargetError, match="has no function 'nope'"):
        resolve_target("json:nope")


def test_missing_module() -> None:
    with pytest.raises(TargetError, match="cannot import 'no_such_module_xyz'"):
        resolve_target("no_such_module_xyz:f")


@pytest.mark.parametrize("source", ["raise RuntimeError('boom at import')", "def f(:\n"])
def test_file_that_raises_at_import(write_module, source) -> None:
    path = write_module(source)
    with pytest.raises(TargetError, match=r"importing .* failed"):
        resolve_target(f"{path}:f")
    assert path.stem not in sys.modules  # a half-imported module is not left behind


@pytest.mark.parametrize("source", ["raise RuntimeError('boom at import')", "def f(:\n"])
def test_module_that_raises_at_import(write_module, monkeypatch, source) -> None:
    path = write_module(source)
    monkeypatch.syspath_prepend(str(path.parent))
    with pytest.raises(TargetError, match=r"boom at import|SyntaxError|invalid syntax"):
        resolve_target(f"{path.stem}:f")


@pytest.mark.parametrize("target", ["json", "json:", ":dumps", "", "study.py"])
def test_malformed_target(target) -> None:
    with pytest.raises(TargetError, match="is not MODULE:FUNCTION"):
        resolve_target(target)


# --------------------------------------------------------------------------- Signature


def test_signature_detects_trial_and_required() -> None:
    def f(n, algo="ga", *, lr, trial):
        pass

    sig = Signature.of(f)
    assert sig.name == "f"
    assert sig.wants_trial
    assert sig.accepted == {"n", "algo", "lr"}
    assert sig.required == {"n", "lr"}


def test_signature_without_trial() -> None:
    sig = Signature.of(lambda n: n)
    assert not sig.wants_trial
    assert sig.accepted == {"n"}


def test_check_names_lists_what_the_function_takes() -> None:
    def simulate(n, algo="ga", trial=None):
        pass

    sig = Signature.of(simulate)
    sig.check_names(["n", "algo"])
    expected = r"simulate\(\) has no parameter 'nn' \(it takes algo, n\)"
    with pytest.raises(TargetError, match=expected):
        sig.check_names(["n", "nn"])
    with pytest.raises(TargetError, match="'trial'"):
        sig.check_names(["trial"])  # trial is passed in, never a parameter


def test_check_names_of_a_function_without_parameters() -> None:
    with pytest.raises(TargetError, match="no parameters"):
        Signature.of(lambda: None).check_names(["x"])


def test_kwargs_accepts_any_name() -> None:
    def f(n, **rest):
        pass

    sig = Signature.of(f)
    assert sig.accepted is None
    sig.check_names(["n", "anything", "else"])
    assert sig.required == {"n"}


def test_check_point_needs_every_required_parameter() -> None:
    def f(n, m, algo="ga", trial=None):
        pass

    sig = Signature.of(f)
    sig.check_point({"n": 1, "m": 2})
    with pytest.raises(TargetError, match=r"f\(\) needs 'm', which the space does not set"):
        sig.check_point({"n": 1, "algo": "sa"})


def test_signature_of_something_unreadable() -> None:
    with pytest.raises(TargetError, match="cannot read the parameters"):
        Signature.of(min)  # a builtin without a signature


# ------------------------------------------------------------------------- FunctionRef


def module_level(x: int) -> int:
    return x + 1


def test_module_function_is_shipped_by_target() -> None:
    ref = FunctionRef.of(json.dumps)
    assert ref == FunctionRef("json:dumps")
    assert ref.key == "json:dumps"
    assert ref.load() is json.dumps


def test_test_module_function_is_shipped_by_target() -> None:
    ref = FunctionRef.of(module_level)
    assert ref.target == f"{__name__}:module_level"
    assert ref.pickled is None
    assert ref.load() is module_level


def test_lambda_is_shipped_by_value() -> None:
    ref = FunctionRef.of(lambda x: x * 3)
    assert ref.target is None
    assert isinstance(ref.pickled, bytes)
    assert ref.key.startswith("pickle:")
    assert ref.load()(4) == 12


def test_closure_is_shipped_by_value() -> None:
    def make(k: int):
        def scaled(x: int) -> int:
            return k * x

        return scaled

    ref = FunctionRef.of(make(5))
    assert ref.target is None
    fn = ref.load()
    assert fn(3) == 15
    assert FunctionRef.of(make(6)).key != ref.key  # a different closure is a different function
