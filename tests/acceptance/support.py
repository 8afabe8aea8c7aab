"""What the acceptance tests share: the study they run, and ways to look at what it did.

The tests drive the real ``sweeplab`` command line in subprocesses (fixtures in
``conftest.py``), on SQLite stores in ``tmp_path``, over the study file below.

Every function of the study appends one line to ``executions/NAME`` (NAME made of its
parameters) as the LAST thing it does, so the files count how many times each trial ran
to its end: a trial that is interrupted or killed part-way leaves no line.
"""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import sweeplab as sl

STUDY = textwrap.dedent(
    """
    import ctypes
    import os
    import random
    import time
    from pathlib import Path

    HERE = Path(__file__).parent


    def _executed(name, line="done"):
        folder = HERE / "executions"
        folder.mkdir(exist_ok=True)
        with open(folder / name, "a") as f:
            f.write(line + "\\n")


    def simulate(n, algo, trial):
        # the README's example, plus the trace
        rng = random.Random(trial.seed)
        for step in range(3):
            trial.log(step=step, loss=1 / (step + 1))
        result = {"objective": n * rng.random(), "algo_len": len(algo)}
        _executed(f"n={n},algo={algo},rep={trial.repetition}")
        return result


    def slow(x, pause=0.3):
        time.sleep(pause)
        _executed(f"x={x}", str(os.getpid()))
        return {"y": x * x}


    def fault(case, trial):
        if case == "raise":
            raise ValueError(f"case {case} refuses on attempt {trial.attempt}")
        if case == "sleep":
            time.sleep(60)
        if case == "busy":
            while True:
                pass
        if case == "stubborn":  # swallows the timeout and spins on: must be killed
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    while True:
                        pass
                except BaseException:
                    pass
        if case == "exit":
            os._exit(3)
        if case == "segv":
            ctypes.string_at(0)
        if case == "kill":
            os.kill(os.getpid(), 9)
        if case == "flaky" and trial.attempt == 1:
            raise RuntimeError("flaky: fails on its first attempt")
        _executed(f"case={case}", str(trial.attempt))
        return {"attempt": trial.attempt}


    def count(steps, trial):
        # one line per step executed, then a checkpoint of the next step to run
        start = trial.restore(0)
        for i in range(start, steps):
            time.sleep(0.05)
            _executed(f"steps={steps}", f"{trial.attempt} {i}")
            trial.checkpoint(i + 1)
        return {"started_at_step": start}


    def point(a, b):
        return a + b
    """
)

#: how long a stopped ``sweeplab run`` may take to exit
STOP_WITHIN_S = 6.0


def executions(folder: Path) -> Counter[str]:
    """How many times each trial of the study ran to its end, by trace name."""
    traces = folder / "executions"
    if not traces.is_dir():
        return Counter()
    return Counter({p.name: len(p.read_text().splitlines()) for p in traces.iterdir()})


def trace_lines(folder: Path, name: str) -> list[str]:
    path = folder / "executions" / name
    return path.read_text().splitlines() if path.exists() else []


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        time.sleep(0.01)


def counts(url: str, name: str) -> dict[str, int]:
    """Trials of experiment ``name`` by status, read through the public API."""
    with sl.open_store(url, create=False) as store:
        return sl.Experiment.open(name, store=store).status()


def records(url: str, name: str) -> list[sl.TrialRecord]:
    with sl.open_store(url, create=False) as store:
        return sl.Experiment.open(name, store=store).trials()


def process_workers_of(parent_pid: int) -> list[int]:
    """Live ``process_worker`` interpreters started by the runner ``parent_pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue  # gone meanwhile
        # python -m sweeplab.backends.process_worker READ_FD WRITE_FD PARENT_PID
        if b"sweeplab.backends.process_worker" in argv and argv[-1] == str(parent_pid).encode():
            found.append(int(entry.name))
    return found
