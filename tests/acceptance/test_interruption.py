"""Ctrl-C, SIGTERM and SIGKILL in the middle of `sweeplab run`, then the same command again:
every trial runs exactly once, and the results are complete.

The signal goes out 0.1 s after a trial left its trace, so that, with trials of 0.3 s in
step on every slot, it lands in the middle of trials rather than at their edges.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.acceptance.support import (
    STOP_WITHIN_S,
    counts,
    executions,
    process_workers_of,
    records,
    trace_lines,
    wait_until,
)

TRIALS = 12
BACKENDS = ["serial", "threads", "processes"]
STORE = ["--store", "sqlite:///runs.db"]


def _run_args(backend: str) -> list[str]:
    sweep = [f"x=range(0,{TRIALS})", "pause=0.3"]
    return ["run", "study.py:slow", *sweep, "--backend", backend, "-j", "2", *STORE]


def _stop_mid_run(start_sweeplab, tmp_path, backend: str, signum: int):
    """Start the run, wait for 3 trials to finish, send ``signum``; the process and its time."""
    runner = start_sweeplab(*_run_args(backend), "--no-progress")
    wait_until(
        lambda: sum(executions(tmp_path).values()) >= 3 or runner.poll() is not None,
        timeout_s=60,
        what="3 trials to finish",
    )
    assert runner.poll() is None, runner.communicate()
    time.sleep(0.1)
    if backend == "processes":
        assert process_workers_of(runner.pid), "no worker process seen"
    sent = time.monotonic()
    runner.send_signal(signum)
    out, err = runner.communicate(timeout=60)
    return runner, out, err, time.monotonic() - sent


def _finish_and_check(sweeplab, tmp_path, backend: str) -> None:
    """The same command again runs what is left, and every trial ran exactly once."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    again = sweeplab(*_run_args(backend), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert counts(url, "slow") == {"pending": 0, "running": 0, "done": TRIALS, "failed": 0}
    assert executions(tmp_path) == {f"x={x}": 1 for x in range(TRIALS)}
    assert {t.params["x"]: t.result for t in records(url, "slow")} == {
        x: {"y": x * x} for x in range(TRIALS)
    }


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
    ids=["SIGINT", "SIGTERM"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_stopped_run_hands_back_and_resumes(
    request, backend, signum, status, study, start_sweeplab, sweeplab, tmp_path
):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    runner, _, err, took_s = _stop_mid_run(start_sweeplab, tmp_path, backend, signum)
    assert took_s < STOP_WITHIN_S, f"took {took_s:.1f} s to stop"
    assert "Run the same command again to finish" in err, err
    after = counts(url, "slow")
    assert after["running"] == 0 and after["failed"] == 0
    assert after["done"] == sum(executions(tmp_path).values())  # finished trials are recorded
    assert 3 <= after["done"] < TRIALS
    assert process_workers_of(runner.pid) == []
    _finish_and_check(sweeplab, tmp_path, backend)
    assert runner.returncode == status, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkilled_run_resumes_and_runs_each_trial_once(
    backend, study, start_sweeplab, sweeplab, tmp_path
):
    runner, _, _, _ = _stop_mid_run(start_sweeplab, tmp_path, backend, signal.SIGKILL)
    assert runner.returncode == -signal.SIGKILL
    # the worker processes die with their runner
    wait_until(lambda: not process_workers_of(runner.pid), timeout_s=5, what="the workers to exit")
    _finish_and_check(sweeplab, tmp_path, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpointed_trial_resumes_where_it_was_killed(
    backend, study, start_sweeplab, sweeplab, tmp_path
):
    steps = 40
    args = ["run", "study.py:count", f"steps={steps}", "--backend", backend, *STORE]
    trace = f"steps={steps}"
    runner = start_sweeplab(*args, "--no-progress")
    wait_until(
        lambda: len(trace_lines(tmp_path, trace)) >= 10 or runner.poll() is not None,
        timeout_s=60,
        what="10 steps",
    )
    runner.kill()
    runner.communicate()
    wait_until(lambda: not process_workers_of(runner.pid), timeout_s=5, what="the workers to exit")
    first = [int(line.split()[1]) for line in trace_lines(tmp_path, trace)]
    assert first == list(range(len(first))) and len(first) < steps

    again = sweeplab(*args, "--no-progress")
    assert again.returncode == 0, again.stderr
    lines = [line.split() for line in trace_lines(tmp_path, trace)]
    second = [int(step) for attempt, step in lines if attempt == "2"]
    assert [int(step) for attempt, step in lines if attempt == "1"] == first
    assert len(lines) == len(first) + len(second)
    # the second attempt starts from the last checkpoint: the step that was cut off (its
    # checkpoint not committed) may run again, none before it does
    assert second == list(range(second[0], steps))
    assert second[0] in (first[-1], first[-1] + 1)
    (done,) = records(f"sqlite:///{tmp_path / 'runs.db'}", "count")
    assert (done.status, done.attempts, done.result) == ("done", 2, {"started_at_step": second[0]})
