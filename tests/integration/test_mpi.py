"""The MPI backend under a real ``mpiexec`` (MPICH's hydra, from PyPI's ``mpich`` wheel):
rank 0 drives, the other ranks run the trials, from the command line or a script.

A missing ``mpiexec`` or ``mpi4py`` skips on a laptop and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

import sweeplab as sl
from tests.conftest import unavailable

STUDY = textwrap.dedent(
    """
    import os
    import time


    def f(a):
        from mpi4py import MPI

        time.sleep(0.05)  # long enough that both serving ranks get work
        return {"rank": MPI.COMM_WORLD.Get_rank(), "pid": os.getpid(), "square": a * a}
    """
)

SCRIPT = textwrap.dedent(
    """
    import sys

    import sweeplab as sl


    def g(a, trial):
        import time

        from mpi4py import MPI

        time.sleep(0.05)
        return {"rank": MPI.COMM_WORLD.Get_rank(), "seed": trial.seed % 1000}


    # every rank runs this same script, as under any mpiexec
    exp = sl.Experiment(g, name="scripted", store=sys.argv[1])
    exp.add(sl.grid(a=range(12)))
    report = exp.run(backend="mpi")
    print(f"rank done={report.done} failed={report.failed}", flush=True)
    """
)


@pytest.fixture
def mpiexec() -> list[str]:
    """How to start 3 ranks on this machine."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        unavailable("mpi4py (pip install 'sweeplab[mpi]')")
    found = shutil.which("mpiexec")
    if found is None:
        unavailable("mpiexec (pip install 'sweeplab[mpi]', or Debian's mpich)")
    return [found, "-n", "3"]


@pytest.fixture
def study(tmp_path: Path) -> Path:
    path = tmp_path / "study.py"
    path.write_text(STUDY)
    return path


def sweeplab_command() -> list[str]:
    found = shutil.which("sweeplab")
    return [found] if found else [sys.executable, "-m", "sweeplab"]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SWEEPLAB_STORE"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def ranks_of(store: str, name: str) -> Counter[int]:
    exp = sl.Experiment.open(name, store=store)
    frame = exp.results()
    assert list(frame["status"]) == ["done"] * 12, frame[["status", "error"]]
    return Counter(int(rank) for rank in frame["rank"])


def test_mpiexec_runs_the_cli_with_rank_0_driving(
    mpiexec: list[str], study: Path, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'mpi.db'}"
    command = [*sweeplab_command(), "run", "study.py:f", "a=range(0,12)", "--backend", "mpi"]
    done = run([*mpiexec, *command, "--store", store, "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    ranks = ranks_of(store, "f")
    assert set(ranks) == {1, 2}, f"trials per rank: {ranks}"
    frame = sl.Experiment.open("f", store=store).results().sort_values("a")
    assert list(frame["square"]) == [a * a for a in range(12)]


def test_mpiexec_runs_a_script_that_calls_run(mpiexec: list[str], tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    store = f"sqlite:///{tmp_path / 'mpi.db'}"
    done = run([*mpiexec, sys.executable, str(script), store], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # rank 0 reports the run; the serving ranks return an empty report when it ends
    assert "rank done=12 failed=0" in done.stdout, done.stdout
    assert done.stdout.count("rank done=") == 3, done.stdout
    ranks = ranks_of(store, "scripted")
    assert set(ranks) == {1, 2}, f"trials per rank: {ranks}"


def test_the_mpi_backend_without_mpiexec_is_a_usage_error(
    mpiexec: list[str], study: Path, tmp_path: Path
) -> None:
    store_file = tmp_path / "mpi.db"
    command = [*sweeplab_command(), "run", "study.py:f", "a=1,2", "--backend", "mpi"]
    done = run([*command, "--store", f"sqlite:///{store_file}"], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "mpiexec -n" in lines[0] and "2 ranks" in lines[0], lines[0]
    assert not store_file.exists(), "bad input must leave the store as it was"
