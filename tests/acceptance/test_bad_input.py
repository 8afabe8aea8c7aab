"""Bad input: exit status 2, one line on standard error that names the problem, nothing on
standard output, and every file in the folder (the store first) left as it was."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

STORE = ["--store", "sqlite:///runs.db"]
PASSWORD = "s3cretpw"


def _files(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` but bytecode caches: content hash and mtime."""
    return {
        str(p.relative_to(folder)): (_sha256(p), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(study, sweeplab, tmp_path) -> Path:
    """A store with one experiment, a module that cannot be imported, and a text file."""
    added = sweeplab("add", "study.py:slow", "x=1,2,3", *STORE)
    assert added.returncode == 0, added.stderr
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n\ndef f(n):\n    pass\n")
    (tmp_path / "notes.txt").write_text("not a database\n")
    # schema 99: a store made by a newer sweeplab
    (tmp_path / "newer.db").write_bytes((tmp_path / "runs.db").read_bytes())
    with sqlite3.connect(tmp_path / "newer.db") as db:
        db.execute("UPDATE sweeplab_meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    return tmp_path


def _refused(sweeplab, folder: Path, *args: str) -> str:
    """Run a bad command; check the exit status, the output and the files; the message."""
    before = _files(folder)
    result = sweeplab(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("sweeplab: error: ")
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert _files(folder) == before
    return result.stderr


BAD = {
    "file-not-importable": (
        ["run", "broken.py:f", "n=1", *STORE],
        ["broken.py", "No module named 'nonexistent_module_xyz'"],
    ),
    "module-not-importable": (
        ["run", "nosuchpkg_xyz.study:f", "n=1", *STORE],
        ["cannot import 'nosuchpkg_xyz.study'"],
    ),
    "missing-function": (
        ["run", "study.py:nope", "x=1", *STORE],
        ["study.py has no function 'nope'"],
    ),
    "unknown-parameter": (
        ["run", "study.py:simulate", "x=1", *STORE],
        ["simulate() has no parameter 'x'", "algo, n"],
    ),
    "missing-parameter": (
        ["run", "study.py:simulate", "n=1", *STORE],
        ["simulate() needs 'algo'"],
    ),
    "malformed-sweep": (
        ["run", "study.py:slow", "x=range(1", *STORE],
        ["'x=range(1'"],
    ),
    "unknown-backend": (
        ["run", "study.py:slow", "x=1", "--backend", "nope", *STORE],
        ["unknown backend 'nope'", "serial, threads, processes"],
    ),
    "unknown-option": (
        ["run", "study.py:slow", "x=1", "--color", "never", *STORE],
        ["unrecognized arguments: --color never"],
    ),
    "server-not-reachable": (
        ["run", "study.py:slow", "x=1", "--store", f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"],
        ["cannot open store", "127.0.0.1:1"],
    ),
    "text-file-run": (
        ["run", "study.py:slow", "x=1", "--store", "sqlite:///notes.txt"],
        ["notes.txt is not a sweeplab store"],
    ),
    "text-file-status": (
        ["status", "--store", "sqlite:///notes.txt"],
        ["notes.txt is not a sweeplab store"],
    ),
    "unknown-experiment": (
        ["results", "nope", *STORE],
        ["has no experiment 'nope'", "it has 'slow'"],
    ),
    "unknown-trial": (
        ["show", "slow", "99", *STORE],
        ["experiment 'slow' has no trial 99"],
    ),
    "newer-schema-run": (
        ["run", "study.py:slow", "x=1,2,3,4", "--store", "sqlite:///newer.db"],
        ["has schema 99", "pip install -U sweeplab"],
    ),
    "newer-schema-status": (
        ["status", "--store", "sqlite:///newer.db"],
        ["has schema 99", "pip install -U sweeplab"],
    ),
    "newer-schema-results": (
        ["results", "slow", "--store", "sqlite:///newer.db"],
        ["has schema 99", "pip install -U sweeplab"],
    ),
    "repeat-zero": (
        ["add", "study.py:slow", "x=1,2,3,4", "--repeat", "0", *STORE],
        ["--repeat 0"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, folder, sweeplab):
    args, named = BAD[case]
    message = _refused(sweeplab, folder, *args)
    for words in named:
        assert words in message
    assert PASSWORD not in message


@pytest.mark.parametrize(
    "option",
    [["--timeout", "0"], ["--max-trials", "0"], ["--retries", "-1"], ["--lease", "0"]],
    ids=["timeout", "max-trials", "retries", "lease"],
)
def test_bad_run_option_adds_no_trials(option, folder, sweeplab):
    message = _refused(sweeplab, folder, "run", "study.py:slow", "x=1,2,3,4", *option, *STORE)
    assert option[0].lstrip("-").replace("-", "_") in message


@pytest.mark.parametrize("store", ["runs.db", "fresh.db"])
def test_run_without_sweep_of_a_new_experiment_writes_nothing(store, folder, sweeplab):
    message = _refused(sweeplab, folder, "run", "study.py:point", "--store", f"sqlite:///{store}")
    assert "'point' has no trials" in message
