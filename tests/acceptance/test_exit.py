"""How the command line ends: where no user code ran in its interpreter, it skips tearing
down every module (``cli.main.entry``) but still runs the atexit handlers; where a user's
code ran, the interpreter shuts down in full, so the user's objects are finalized. A
worker's trial processes, forked from it (``backends.forked``), end as an interpreter
would for the user's code: its threads joined, its exit handlers run, what its modules hold
freed (an open file flushed), and nothing of the parent's touched.

A ``sitecustomize`` on PYTHONPATH marks, per process, that an atexit handler ran and that
an object left to the interpreter's shutdown was finalized; the study marks the same for
its own handler and object, prefixed ``study-``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

SITECUSTOMIZE = textwrap.dedent(
    """
    import atexit
    import os

    _marks = os.environ.get("SWEEPLAB_TEST_MARKS")
    if _marks:

        def _mark(what, _open=open, _join=os.path.join, _pid=os.getpid):
            _open(_join(_marks, f"{what}.{_pid()}"), "w").close()

        atexit.register(_mark, "atexit")

        class _LeftToShutdown:
            def __del__(self, _mark=_mark):
                _mark("finalized")

        left_to_shutdown = _LeftToShutdown()
    """
)

STUDY = textwrap.dedent(
    """
    import atexit
    import os
    import threading
    import time

    from sitecustomize import _mark  # the same marks, named study-*

    atexit.register(_mark, "study-atexit")

    class _Held:
        def __del__(self, _mark=_mark):
            _mark("study-finalized")

    held = _Held()
    log = open("trials.log", "a")  # never flushed here: the process's end must do it

    def _late(x):
        time.sleep(0.3)
        log.write(f"late {x}\\n")

    def square(x):
        # how the process running the trial was started, and a thread it must wait for
        argv = open("/proc/self/cmdline", "rb").read().split(bytes(1))
        log.write(f"{x} {os.getpid()} {' '.join(a.decode() for a in argv[1:3])}\\n")
        threading.Thread(target=_late, args=(x,)).start()
        return {"y": x * x}
    """
)


@pytest.fixture
def marked(tmp_path: Path, cli_env: dict[str, str], start_sweeplab):
    """``marked(*args)``: run the CLI; its pid and the marks of every process it ran."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (tmp_path / "study.py").write_text(STUDY)
    marks = tmp_path / "marks"
    marks.mkdir()
    cli_env.update(PYTHONPATH=str(site), SWEEPLAB_TEST_MARKS=str(marks))  # start_sweeplab's

    def run(*args: str) -> tuple[int, set[str]]:
        for old in marks.iterdir():
            old.unlink()
        process = start_sweeplab(*args)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, out + err
        return process.pid, {p.name for p in marks.iterdir()}

    return run


def test_a_command_that_ran_user_code_shuts_down_in_full(marked):
    pid, marks = marked("run", "study.py:square", "x=1,2,3")

    assert {f"atexit.{pid}", f"finalized.{pid}"} <= marks


def test_a_command_without_user_code_ends_at_once_after_the_atexit_handlers(marked):
    marked("add", "study.py:square", "x=1,2,3")

    pid, marks = marked("status")

    assert f"atexit.{pid}" in marks
    assert f"finalized.{pid}" not in marks


def test_a_worker_ends_at_once_and_its_forked_trial_processes_end_the_users_code(
    marked, tmp_path, postgres_url
):
    # a server store: a worker of an SQLite store does not fork (``interpreter`` says why)
    marked("add", "study.py:square", "x=1,2,3", "--store", postgres_url)

    pid, marks = marked("worker", "-j", "2", "--no-progress", "--store", postgres_url)

    assert f"atexit.{pid}" in marks
    assert f"finalized.{pid}" not in marks
    lines = (tmp_path / "trials.log").read_text().splitlines()
    ran = [line.split(" ", 2) for line in lines if not line.startswith("late")]
    # the trials ran in processes forked from the worker: the same command line, no new one
    assert sorted(x for x, _, _ in ran) == ["1", "2", "3"]
    assert {argv for _, _, argv in ran} == {"-m sweeplab"}
    children = {child for _, child, _ in ran}
    assert str(pid) not in children
    # each waited for the study's thread, ran its exit handler and freed its objects, and
    # the file the study left open is complete
    assert sorted(line for line in lines if line.startswith("late")) == [
        "late 1", "late 2", "late 3"
    ]  # fmt: skip
    for child in children:
        assert {f"study-atexit.{child}", f"study-finalized.{child}"} <= marks
        # what the worker registered or held is its own: not run, not freed, in a child
        assert not {f"atexit.{child}", f"finalized.{child}"} & marks


@pytest.mark.parametrize(
    "commands",
    [
        [["run", "study.py:square", "x=1,2", "--backend", "processes", "-j", "2"]],
        [["add", "study.py:square", "x=1,2"], ["worker", "-j", "2", "--no-progress"]],
    ],
    ids=["a run that imported the study", "a worker of an SQLite store"],
)
def test_fresh_trial_processes_where_forking_is_not_safe(marked, tmp_path, commands):
    for args in commands:
        _, marks = marked(*args)

    lines = (tmp_path / "trials.log").read_text().splitlines()
    argv = {line.split(" ", 2)[2] for line in lines if not line.startswith("late")}
    assert argv == {"-m sweeplab.backends.process_worker"}
    children = {line.split(" ")[1] for line in lines if not line.startswith("late")}
    for child in children:
        # a fresh interpreter shuts down in full
        assert {f"atexit.{child}", f"finalized.{child}", f"study-finalized.{child}"} <= marks


def test_a_worker_on_threads_runs_user_code_and_shuts_down_in_full(marked):
    marked("add", "study.py:square", "x=1,2,3")

    pid, marks = marked("worker", "-j", "1", "--threads", "--no-progress")

    assert {f"atexit.{pid}", f"finalized.{pid}"} <= marks
