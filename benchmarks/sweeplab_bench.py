"""sweeplab's side of the in-process measurements, run in the repository's environment.

Each workload is a fresh process with a fresh store, so nothing is warm but what the
workload itself warms; the trials are added before the clock starts, and the clock covers
``exp.run`` only: claims, dispatch, the backend's start and stop, and every outcome
committed to SQLite.
"""

from __future__ import annotations

from typing import Any

import sweeplab as sl
from benchmarks import workloads as w
from benchmarks.protocol import main, stopwatch


def _run(exp: sl.Experiment, backend: str, workers: int) -> dict[str, Any]:
    with stopwatch() as t:
        report = exp.run(backend, workers)
    return {
        "wall_s": t["s"],
        "completed": report.done,
        "failed": report.failed,
        "reported_s": report.duration_s,
    }


def w0(p: dict[str, Any]) -> dict[str, Any]:
    exp = sl.Experiment(w.noop, store=p["store"])
    exp.add(sl.grid(a=range(p["a"]), b=range(p["b"])))
    return _run(exp, p["backend"], p["workers"])


def w1(p: dict[str, Any]) -> dict[str, Any]:
    exp = sl.Experiment(w.burn, store=p["store"])
    exp.add(sl.grid(i=range(p["trials"]), loops=p["loops"]))
    return _run(exp, "processes", p["workers"])


def w2(p: dict[str, Any]) -> dict[str, Any]:
    exp = sl.Experiment(w.nap, store=p["store"])
    exp.add(sl.grid(i=range(p["trials"]), seconds=p["seconds"]))
    return _run(exp, "threads", p["workers"])


def w3_fill(p: dict[str, Any]) -> dict[str, Any]:
    """The W3 read-back store: trials run to done (not a target, timed for the record)."""
    exp = sl.Experiment(w.noop, store=p["store"])
    with stopwatch() as added:
        exp.add(sl.grid(a=range(p["a"]), b=range(p["b"])))
    out = _run(exp, "serial", 1)
    return {**out, "add_s": added["s"]}


def w3_read(p: dict[str, Any]) -> dict[str, Any]:
    """``status()`` and ``results()`` on a store of done trials, as a user's script calls them.

    The first ``results()`` includes the import of pandas that it triggers, as it does for
    a user; the second shows the cost of the read alone.
    """
    with stopwatch() as opened:
        exp = sl.Experiment.open(p["name"], store=p["store"])
    with stopwatch() as status:
        counts = exp.status()
    with stopwatch() as first:
        frame = exp.results()
    with stopwatch() as warm:
        frame = exp.results()
    return {
        "wall_s": first["s"],
        "open_s": opened["s"],
        "status_s": status["s"],
        "results_first_s": first["s"],
        "results_warm_s": warm["s"],
        "completed": len(frame),
        "done": counts.get("done", 0),
    }


def counts(p: dict[str, Any]) -> dict[str, Any]:
    """How many trials of the experiment are in each status (W4's check), and the window in
    which the store saw them run: from the first trial's start to the last one's finish."""
    exp = sl.Experiment.open(p["name"], store=p["store"])
    status = exp.status()
    done = exp.trials(status="done")
    starts = [t.started_at for t in done if t.started_at is not None]
    ends = [t.finished_at for t in done if t.finished_at is not None]
    first, last = (min(starts), max(ends)) if starts and ends else (None, None)
    return {
        "counts": status,
        "completed": status.get("done", 0),
        "drain_s": None if first is None else last - first,
        "first_start": first,
        "last_finish": last,
    }


if __name__ == "__main__":
    main({"W0": w0, "W1": w1, "W2": w2, "W3-fill": w3_fill, "W3-read": w3_read, "counts": counts})
