"""How the command line ends: where no user code ran in its interpreter, it skips tearing
down every module (``cli.main.entry``) but still runs the atexit handlers; where a user's
code ran, the interpreter shuts down in full, so the user's objects are finalized.

A ``sitecustomize`` on PYTHONPATH marks, per process, that an atexit handler ran and that
an object left to the interpreter's shutdown was finalized.
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
    def square(x):
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


def test_a_worker_ends_at_once_while_its_trial_processes_shut_down_in_full(marked):
    marked("add", "study.py:square", "x=1,2,3")

    pid, marks = marked("worker", "-j", "1", "--no-progress")

    assert f"atexit.{pid}" in marks
    assert f"finalized.{pid}" not in marks
    # the process that ran the trials imported the study: it shuts down in full
    children = {m.split(".")[1] for m in marks} - {str(pid)}
    assert children
    assert all(f"finalized.{child}" in marks for child in children)


def test_a_worker_on_threads_runs_user_code_and_shuts_down_in_full(marked):
    marked("add", "study.py:square", "x=1,2,3")

    pid, marks = marked("worker", "-j", "1", "--threads", "--no-progress")

    assert {f"atexit.{pid}", f"finalized.{pid}"} <= marks
