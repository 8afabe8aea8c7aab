"""SLURM, for real: jobs submitted through submitit to a one-node cluster on this machine.

The session fixture starts the cluster with ``scripts/slurm.sh`` when ``sinfo`` does not
answer (it needs root: it installs packages and starts daemons). Without one, the tests
skip on a laptop and fail under ``CI=true`` (``tests.conftest.unavailable``). Stores are
SQLite files in ``tmp_path``, which the jobs on this one node share with the test.

Every trial of the study appends ``start X FROM JOB RESTARTS`` to ``trace`` when it
begins and ``end X JOB`` as the last thing it does, so the file tells how often each
trial ran to its end, where, and from which checkpointed step it started.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sweeplab as sl
from sweeplab.target import resolve_target
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]

STUDY = textwrap.dedent(
    """
    import os
    import random
    import time
    from pathlib import Path

    HERE = Path(__file__).parent


    def _job():
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        if array:
            return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        return os.environ.get("SLURM_JOB_ID", "none")


    def _trace(line):
        with open(HERE / "trace", "a") as f:
            f.write(line + "\\n")


    def seeded(a, b, trial):
        # what serial and SLURM must give back identically
        rng = random.Random(trial.seed)
        for step in range(3):
            trial.log(step=step, loss=rng.random())
        _trace(f"start {a}/{b} 0 {_job()} {os.environ.get('SLURM_RESTART_COUNT', 0)}")
        _trace(f"end {a}/{b} {_job()}")
        return {"score": a * 100 + b + rng.random(), "label": f"{a}/{b}"}


    def steps(x, n=20, pause=0.1, trial=None):
        # n steps of `pause` seconds, each checkpointed: an interrupted trial goes on
        start = trial.restore(0)
        _trace(f"start {x} {start} {_job()} {os.environ.get('SLURM_RESTART_COUNT', 0)}")
        for step in range(start, n):
            time.sleep(pause)
            trial.checkpoint(step + 1)
        _trace(f"end {x} {_job()}")
        return {"x": x, "resumed_from": start}
    """
)

SUBMITTER = textwrap.dedent(
    """
    import sys

    import sweeplab as sl
    from sweeplab.target import resolve_target

    study, store, logs = sys.argv[1:4]
    exp = sl.Experiment(resolve_target(study + ":steps"), name="detached", store=store)
    exp.add(sl.grid(x=range(8), n=10))
    report = exp.run(backend="slurm", wait=False, workers=2, folder=logs, timeout_min=5)
    print("submitted", report.counts, flush=True)
    """
)


# --------------------------------------------------------------------------- the cluster
def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and any(
        state.startswith(("idle", "mixed", "alloc", "completing")) for state in out.stdout.split()
    )


@pytest.fixture(scope="session")
def slurm() -> None:
    """A one-node SLURM cluster that answers, started by scripts/slurm.sh if need be."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        unavailable("submitit (pip install 'sweeplab[slurm]')")
    if _cluster_answers():
        return
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm.sh")], capture_output=True, text=True, timeout=280
    )
    if started.returncode != 0 or not _cluster_answers():
        why = (started.stderr.strip() or started.stdout.strip()).splitlines()[-1:]
        unavailable(f"a one-node SLURM cluster (scripts/slurm.sh: {' '.join(why)})")


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "slurm_study.py"
    path.write_text(STUDY)
    return path


def load(study_file: Path, name: str) -> Callable[..., Any]:
    """The function ``name`` of the study file, loaded by path (as a job loads it)."""
    return resolve_target(f"{study_file}:{name}")


def store_for(tmp_path: Path, key: str) -> str:
    return f"sqlite:///{tmp_path / f'{key}.db'}"


def trace(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "trace"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.1)
    return value


def job_state(job_id: str, fields: str = "%T") -> str:
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--format={fields}", "--jobs", job_id],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def ends_per_trial(tmp_path: Path) -> Counter[str]:
    return Counter(line[1] for line in trace(tmp_path) if line[0] == "end")


def interrupted_mid_trial(tmp_path: Path) -> tuple[str, str]:
    """Wait until some trial has run a few of its steps; return (trial, job)."""
    first = wait_for(lambda: trace(tmp_path), 90, "a trial starting in a job")[0]
    time.sleep(0.6)  # a few steps in, each checkpointed
    return first[1], first[3]


# ------------------------------------------------------------------------------- wait=True
def test_jobs_give_the_results_of_serial(slurm: None, study_file: Path, tmp_path: Path) -> None:
    tables = {}
    for key, backend, options in [
        ("serial", "serial", {}),
        # 2 jobs at once, 2 trials a job: batches packed into jobs, jobs into arrays
        ("slurm", "slurm", {"workers": 2, "trials_per_job": 2, "timeout_min": 5}),
    ]:
        if key == "slurm":
            options["folder"] = str(tmp_path / "slurm-logs")
            (tmp_path / "trace").unlink()
        exp = sl.Experiment(load(study_file, "seeded"), name="same", store=store_for(tmp_path, key))
        assert exp.add(sl.grid(a=[1, 2, 3], b=[0, 5])) == 6
        report = exp.run(backend=backend, **options)
        assert (report.done, report.failed) == (6, 0), f"{key}: {report}"
        columns = ["trial_id", "a", "b", "seed", "status", "score", "label"]
        metrics = exp.metrics()[["trial_id", "step", "name", "value"]]
        tables[key] = (
            exp.results()[columns].sort_values("trial_id").reset_index(drop=True),
            metrics.sort_values(["trial_id", "step", "name"]).reset_index(drop=True),
        )
    pd.testing.assert_frame_equal(tables["slurm"][0], tables["serial"][0])
    pd.testing.assert_frame_equal(tables["slurm"][1], tables["serial"][1])

    jobs = {line[2] for line in trace(tmp_path) if line[0] == "end"}
    assert "none" not in jobs, "a trial ran outside SLURM"
    assert len(jobs) <= 3, f"6 trials at 2 a job ran in {len(jobs)} jobs: {jobs}"


# ------------------------------------------------------------------------------ wait=False
def test_a_run_outlives_its_submitter(slurm: None, study_file: Path, tmp_path: Path) -> None:
    store = store_for(tmp_path, "detached")
    submitter = tmp_path / "submit.py"
    submitter.write_text(SUBMITTER)
    done = subprocess.run(
        [sys.executable, str(submitter), str(study_file), store, str(tmp_path / "slurm-logs")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted" in done.stdout

    exp = sl.Experiment.open("detached", store=store)  # a later process: the store is all
    assert exp.status()["done"] < 8, "the submitter waited for the trials"
    counts = exp.wait(timeout=90, poll=0.5)
    assert counts["done"] == 8 and counts["failed"] == 0, counts
    assert sorted(exp.results()["x"]) == list(range(8))
    assert set(ends_per_trial(tmp_path).values()) == {1}, trace(tmp_path)
    assert all(line[3] != "none" for line in trace(tmp_path) if line[0] == "start")


def test_a_job_cancelled_mid_trial_loses_nothing(
    slurm: None, study_file: Path, tmp_path: Path
) -> None:
    exp = sl.Experiment(load(study_file, "steps"), name="cancelled", store=store_for(tmp_path, "c"))
    exp.add(sl.grid(x=range(6)))  # 2 s each, 2 jobs that run until nothing is left
    exp.run(
        backend="slurm",
        wait=False,
        workers=2,
        worker_backend="threads",
        folder=str(tmp_path / "slurm-logs"),
        timeout_min=5,
    )
    victim, job = interrupted_mid_trial(tmp_path)
    subprocess.run(["scancel", job], check=True)  # SIGTERM, then SIGKILL 10 s later

    counts = exp.wait(timeout=90, poll=0.5)
    assert counts["done"] == 6 and counts["failed"] == 0, counts
    assert set(ends_per_trial(tmp_path).values()) == {1}, trace(tmp_path)
    starts = [line for line in trace(tmp_path) if line[:2] == ["start", victim]]
    assert len(starts) == 2, starts
    assert starts[0][3] == job and starts[1][3] != job, starts
    frame = exp.results().set_index("x")
    assert frame.loc[int(victim), "resumed_from"] > 0, "the trial started over"
    assert frame.loc[int(victim), "attempts"] == 1, "a trial handed back counted as failed"
    assert wait_for(lambda: job_state(job) in ("CANCELLED", ""), 30, "the job ending")


def test_the_time_limit_signal_requeues_the_job(
    slurm: None, study_file: Path, tmp_path: Path
) -> None:
    exp = sl.Experiment(load(study_file, "steps"), name="requeued", store=store_for(tmp_path, "r"))
    exp.add(sl.grid(x=range(3)))
    report = exp.run(
        backend="slurm",
        wait=False,
        workers=1,
        worker_backend="threads",
        folder=str(tmp_path / "slurm-logs"),
        timeout_min=5,
    )
    assert report.counts["pending"] == 3
    victim, job = interrupted_mid_trial(tmp_path)
    # what SLURM sends ahead of the time limit (submitit's own test of preemption does this)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    wait_for(lambda: job_state(job, "%T %r") == "PENDING BeginTime", 30, "the job requeueing")
    # SLURM holds a requeued job for two minutes; let it start now, but not within the
    # second of its requeue: the node refuses a credential as old as the one it revoked
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)

    counts = exp.wait(timeout=90, poll=0.5)
    assert counts["done"] == 3 and counts["failed"] == 0, counts
    assert set(ends_per_trial(tmp_path).values()) == {1}, trace(tmp_path)
    starts = [line for line in trace(tmp_path) if line[:2] == ["start", victim]]
    assert [(s[3], s[4]) for s in starts] == [(job, "0"), (job, "1")], starts
    assert int(starts[1][2]) > 0, "the trial started over"
