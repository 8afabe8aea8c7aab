"""Trials that raise, overrun, exit, segfault or kill their process, on the processes
backend: each is failed with its cause, and the others finish. ``run`` (which imports the
study) starts fresh trial processes; a worker forks them (``backends.forked``): both."""

from __future__ import annotations

from tests.acceptance.support import counts, executions, records, trace_lines

STORE = ["--store", "sqlite:///runs.db"]
FAILING = ["raise", "sleep", "busy", "stubborn", "exit", "segv", "kill"]
FINE = ["ok1", "ok2", "ok3", "ok4"]


def test_each_fault_fails_only_its_trial(study, sweeplab, tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    cases = ",".join(FAILING[:4] + FINE[:2] + FAILING[4:] + FINE[2:])
    run = sweeplab(
        "run", "study.py:fault", f"case={cases}", "--backend", "processes", "-j", "2",
        "--timeout", "1", *STORE, "--no-progress",
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "4 done, 7 failed" in run.stdout
    assert counts(url, "fault") == {"pending": 0, "running": 0, "done": 4, "failed": 7}
    assert executions(tmp_path) == {f"case={case}": 1 for case in FINE}

    trials = {t.params["case"]: t for t in records(url, "fault")}
    for case in FINE:
        assert (trials[case].status, trials[case].result) == ("done", {"attempt": 1})
    outcome = {case: (trials[case].error_kind, trials[case].error) for case in FAILING}
    assert outcome == EXPECTED
    assert all(trials[case].status == "failed" for case in FAILING)
    # the run names the failures and says how to look closer
    assert "trial 1 {'case': 'raise'}: ValueError: case raise refuses" in run.stdout
    assert "details: sweeplab show fault ID; retry: sweeplab reset fault" in run.stdout

    show = sweeplab("show", "fault", str(trials["raise"].id), *STORE)
    assert show.returncode == 0, show.stderr
    assert f"trial {trials['raise'].id} of 'fault': failed" in show.stdout
    assert "error       ValueError: case raise refuses on attempt 1" in show.stdout
    traceback = show.stdout.split("  traceback:\n", 1)[1]
    assert "Traceback (most recent call last):" in traceback
    assert f'File "{tmp_path / "study.py"}", line' in traceback
    assert 'raise ValueError(f"case {case} refuses on attempt {trial.attempt}")' in traceback

    show = sweeplab("show", "fault", str(trials["segv"].id), *STORE)
    assert show.returncode == 0, show.stderr
    assert "error       crash: the process running the trial was killed by SIGSEGV" in show.stdout


def test_each_fault_fails_only_its_trial_in_a_workers_forked_processes(
    study, sweeplab, tmp_path, postgres_url
):
    # a worker of a server store forks its trial processes (test_exit checks that it does)
    url = postgres_url
    store = ["--store", url]
    cases = ",".join(FAILING[:4] + FINE[:2] + FAILING[4:] + FINE[2:])
    add = sweeplab("add", "study.py:fault", f"case={cases}", *store)
    assert add.returncode == 0, add.stderr
    worker = sweeplab("worker", "-j", "2", "--timeout", "1", *store, "--no-progress")
    assert worker.returncode == 1, worker.stderr
    assert "(4 done, 7 failed, 0 retried)" in worker.stdout
    assert counts(url, "fault") == {"pending": 0, "running": 0, "done": 4, "failed": 7}
    assert executions(tmp_path) == {f"case={case}": 1 for case in FINE}
    trials = {t.params["case"]: t for t in records(url, "fault")}
    assert {case: (trials[case].error_kind, trials[case].error) for case in FAILING} == EXPECTED
    # a trial that checkpoints opens the store on its own, not through the worker's
    # connections, which its forked process holds no more
    add = sweeplab("add", "study.py:count", "steps=3", *store)
    assert add.returncode == 0, add.stderr
    worker = sweeplab("worker", "-j", "1", *store, "--no-progress")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    (counted,) = records(url, "count")
    assert (counted.status, counted.result) == ("done", {"started_at_step": 0})
    assert trace_lines(tmp_path, "steps=3") == ["1 0", "1 1", "1 2"]


EXPECTED = {
    "raise": ("exception", "ValueError: case raise refuses on attempt 1"),
    "sleep": ("timeout", "timeout: the trial ran past its timeout of 1 s"),
    "busy": ("timeout", "timeout: the trial ran past its timeout of 1 s"),
    "stubborn": (
        "timeout",
        "timeout: the trial did not stop at its timeout and its process was killed",
    ),
    "exit": ("crash", "crash: the process running the trial exited with code 3"),
    "segv": (
        "crash",
        "crash: the process running the trial was killed by SIGSEGV (segmentation fault)",
    ),
    "kill": (
        "crash",
        "crash: the process running the trial was killed by SIGKILL "
        "(out of memory, or killed by someone)",
    ),
}


def test_retries_give_a_flaky_trial_another_attempt(study, sweeplab, tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run = sweeplab(
        "run", "study.py:fault", "case=flaky,raise,ok", "--backend", "processes", "-j", "2",
        "--retries", "2", *STORE, "--no-progress",
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "(2 done, 1 failed, 3 retried)" in run.stdout
    trials = {t.params["case"]: t for t in records(url, "fault")}
    flaky, raising, ok = trials["flaky"], trials["raise"], trials["ok"]
    assert (flaky.status, flaky.attempts, flaky.result) == ("done", 2, {"attempt": 2})
    assert (ok.status, ok.attempts, ok.result) == ("done", 1, {"attempt": 1})
    # a trial that fails every time has 1 + 2 attempts, and keeps its last error
    assert (raising.status, raising.attempts) == ("failed", 3)
    assert raising.error == "ValueError: case raise refuses on attempt 3"
    assert executions(tmp_path) == {"case=flaky": 1, "case=ok": 1}

    # a reset trial starts over from its first attempt
    reset = sweeplab("reset", "fault", *STORE)
    assert (reset.returncode, reset.stdout) == (0, "reset 1 trials of 'fault' to pending\n")
    assert counts(url, "fault") == {"pending": 1, "running": 0, "done": 2, "failed": 0}
    again = sweeplab("run", "study.py:fault", "--backend", "processes", *STORE, "--no-progress")
    assert again.returncode == 1, again.stderr
    (raising,) = [t for t in records(url, "fault") if t.params["case"] == "raise"]
    assert (raising.status, raising.attempts) == ("failed", 1)
    assert raising.error == "ValueError: case raise refuses on attempt 1"
    assert executions(tmp_path) == {"case=flaky": 1, "case=ok": 1}


def test_a_killed_trial_keeps_how_long_it_ran(study, sweeplab, tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run = sweeplab(
        "run", "study.py:fault", "case=stubborn", "--backend", "processes", "--timeout", "0.5",
        *STORE, "--no-progress",
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    (killed,) = records(url, "fault")
    assert killed.error_kind == "timeout"
    assert killed.duration_s >= 0.5
    assert killed.finished_at - killed.started_at >= 0.5
