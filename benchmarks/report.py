"""The Markdown report and the target checks, from the suite's JSON.

Every ratio divides two numbers taken in the same run on the same machine: W0 against
sweeplab serial, W1 against joblib and against the ideal, W2 against the ideal, W4
against one worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: whether a tool keeps each trial's outcome once the process is gone
PERSISTS = {
    "sweeplab": "SQLite, every outcome",
    "joblib": "no",
    "hydra": "a folder per job",
    "pyexperimenter": "SQLite, every outcome",
    "optuna": "SQLite, every outcome",
    "dask": "no",
    "ray": "no",
}


Row = dict[str, Any]

TARGET_TEXT = {
    "w0_serial": "W0 serial, in-process: ≥ 20,000 trials/s",
    "w0_processes": "W0 processes(2), whole command: ≤ 1.5 s",
    "w1": "W1: wall ≤ 1.05 x joblib",
    "w2": "W2: wall ≤ 1.10 x ideal",
    "w3_add_s": "W3: add {points:,} points ≤ 10 s",
    "w3_add_mib": "W3: add {points:,} points ≤ 300 MiB peak",
    "w3_status": "W3: `sweeplab status` ≤ 100 ms",
    "w3_results": "W3: `results()` of {done:,} trials ≤ 2 s",
    "w4": "W4: ≥ 5,000 trials/s across 8 workers on PostgreSQL",
}


def find(results: Iterable[Row], workload: str, tool: str, mode: str = "") -> Row | None:
    for r in results:
        if r["workload"] == workload and r["tool"] == tool and r["mode"].startswith(mode):
            return r
    return None


def ok(r: Row | None) -> bool:
    return r is not None and r["status"] == "ok"


def ideal_s(meta: dict[str, Any], workload: str) -> float | None:
    s = meta["sizes"]
    if workload == "W1" and meta.get("w1_trial_s"):
        return s["w1_trials"] * meta["w1_trial_s"] / s["w1_workers"]
    if workload == "W2":
        return s["w2_trials"] * s["w2_sleep_s"] / s["w2_slots"]
    return None


def targets(data: dict[str, Any]) -> list[Row]:
    """Each target of the performance issue, what this run measured, and whether it is met."""
    meta, res = data["meta"], data["results"]
    out: list[Row] = []

    sizes = {"points": meta["sizes"]["w3_side"] ** 2, "done": meta["sizes"]["w3_done"]}

    def put(key: str, measured: float | None, text: str, met: bool | None) -> None:
        goal = TARGET_TEXT[key].format(**sizes)
        out.append(
            {
                "target": key,
                "goal": goal,
                "value": measured,
                "measured": text,
                "met": met,
            }
        )

    r = find(res, "W0", "sweeplab", "serial")
    if ok(r) and r["in_process_s"]:
        rate = r["trials"] / r["in_process_s"]
        put("w0_serial", rate, f"{rate:,.0f} trials/s", rate >= 20_000)
    r = find(res, "W0", "sweeplab", "processes")
    if ok(r) and r["whole_s"]:
        put("w0_processes", r["whole_s"], f"{r['whole_s']:.2f} s", r["whole_s"] <= 1.5)
    mine, theirs = find(res, "W1", "sweeplab"), find(res, "W1", "joblib")
    if ok(mine) and ok(theirs):
        x = mine["in_process_s"] / theirs["in_process_s"]
        put(
            "w1",
            x,
            f"{mine['in_process_s']:.2f} s vs {theirs['in_process_s']:.2f} s = {x:.2f} x",
            x <= 1.05,
        )
    r, ideal = find(res, "W2", "sweeplab"), ideal_s(meta, "W2")
    if ok(r) and ideal:
        x = r["in_process_s"] / ideal
        put("w2", x, f"{r['in_process_s']:.3f} s vs {ideal:.3f} s = {x:.2f} x", x <= 1.10)
    r = find(res, "W3", "sweeplab", "add")
    if ok(r):
        put("w3_add_s", r["whole_s"], f"{r['whole_s']:.1f} s", r["whole_s"] <= 10)
        put(
            "w3_add_mib",
            r["peak_rss_mib"],
            f"{r['peak_rss_mib']:.0f} MiB",
            r["peak_rss_mib"] <= 300,
        )
    statuses = [x for x in res if x["workload"] == "W3" and x["mode"].startswith("status")]
    if statuses and all(ok(x) for x in statuses):
        text = "; ".join(f"{x['whole_s'] * 1000:.0f} ms ({x['mode'][8:]})" for x in statuses)
        if meta.get("python_start_s"):  # what no command can go below on this machine
            text += f"; `python -c pass` alone {meta['python_start_s'] * 1000:.0f} ms"
        put("w3_status", None, text, all(x["whole_s"] <= 0.1 for x in statuses))
    r = find(res, "W3", "sweeplab", "results()")
    if ok(r):
        first = r["extra"]["results_first_s"]
        text = f"{first:.2f} s first call ({r['extra']['results_warm_s']:.2f} s again)"
        put("w3_results", first, text, first <= 2)
    r = find(res, "W4", "sweeplab", "8 worker")
    if ok(r) and r["whole_s"]:
        rate = r["trials"] / r["whole_s"]
        text = f"{rate:,.0f} trials/s until the last worker exits"
        drain = r["extra"].get("drain_s")
        if drain:  # the store's own rate, once the workers' interpreters are up
            text += f" ({r['trials'] / drain:,.0f} trials/s while draining)"
        put("w4", rate, text, rate >= 5000)
    elif r is not None:
        put("w4", None, f"{r['status']}: {r['note']}", None)
    return out


# -- formatting -----------------------------------------------------------------------
def _s(x: float | None, digits: int = 3) -> str:
    if x is None:
        return ""
    if 0 < x < 10**-digits * 10:  # too small for the decimals asked: keep 2 significant
        return f"{x:.2g}"
    return f"{x:.{digits}f}"


def _rate(trials: int, s: float | None) -> str:
    return "" if not s else f"{trials / s:,.0f}"


def _ratio(x: float | None, base: float | None) -> str:
    if not x or not base:
        return ""
    r = x / base
    return f"{r:,.0f} x" if r >= 100 else f"{r:.2f} x"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _status(r: Row) -> str:
    first = r["extra"].get("failed_once")
    retried = f"failed once, then ran ({first})" if first else ""
    return retried if r["status"] == "ok" else f"**{r['status']}**: {r['note']}"


def _startup(r: Row) -> str:
    return _s(r["extra"].get("startup_s"), 2)


def markdown(data: dict[str, Any]) -> str:
    meta, res = data["meta"], data["results"]
    s = meta["sizes"]
    parts = [
        "# sweeplab benchmarks: latest run\n",
        f"`{meta['command'].strip()}` on {meta['date']}; {meta['cores']} cores ({meta['cpu']}), "
        f"Python {meta['python']}, sweeplab {meta['sweeplab']}; load average "
        f"{meta['load_before'][0]:.2f} before and {meta['load_after'][0]:.2f} after; "
        f"the run took {meta['duration_s']:.0f} s.\n",
    ]
    steps = meta.get("load_by_step") or []
    if steps:
        parts.append(
            "Load average (1 min) as each step started, the suite's own load included: "
            + ", ".join(f"{x['step']} ({', '.join(x['tools'])}) {x['load']:.2f}" for x in steps)
            + ".\n"
        )
    if meta["partial"]:
        parts.append("**A partial run (quick sizes or a subset): not the reference figures.**\n")
    parts.append(
        "Times are medians over the repetitions (see `latest.json` for every sample). "
        "*In-process* is the call that runs the trials, worker pools included; *whole process* "
        "is the command from the interpreter's start to its exit. Every ratio is taken "
        "against a baseline measured in this same run.\n"
    )

    parts.append("\n## Targets (issue 5)\n\n")
    rows = []
    for t in data.get("targets", []):
        met = {True: "met", False: "**missed**", None: "n/a"}[t["met"]]
        rows.append([t["goal"], t["measured"], met])
    parts.append(_table(["target", "measured", ""], rows))

    # W0
    n0 = s["w0_trials"]
    base = find(res, "W0", "sweeplab", "serial")
    base_in = base["in_process_s"] if ok(base) else None
    base_whole = base["whole_s"] if ok(base) else None
    parts.append(
        f"\n## W0 overhead: {n0:,} no-op trials (a∈range({s['w0_a']}) x b∈range({s['w0_b']}))\n\n"
        "Ratios: time against sweeplab serial in this run (higher is slower). sweeplab's whole "
        "process is `sweeplab run FILE:noop a=range(..) b=range(..) --store sqlite:///..`, "
        "adding the trials included; a peer's is its script (set-up included). Dask and Ray "
        "start a cluster first: that start-up is outside the in-process time and inside the "
        "whole process.\n"
    )
    if meta.get("python_start_s"):
        parts.append(
            f"\nFloor under every whole-process figure: `python -c pass` "
            f"{meta['python_start_s']:.3f} s, `python -c 'import sweeplab'` "
            f"{meta['import_sweeplab_s']:.3f} s.\n"
        )
    rows = []
    for r in (x for x in res if x["workload"] == "W0"):
        rows.append(
            [
                r["tool"],
                r["mode"],
                PERSISTS.get(r["tool"], ""),
                _s(r["in_process_s"]),
                _rate(n0, r["in_process_s"]),
                _s(r["in_process_s"] and r["in_process_s"] / n0 * 1000, 3),
                _ratio(r["in_process_s"], base_in),
                _s(r["whole_s"], 2),
                _rate(n0, r["whole_s"]),
                _ratio(r["whole_s"], base_whole),
                _startup(r),
                _status(r),
            ]
        )
    parts.append(
        _table(
            [
                "tool",
                "mode",
                "keeps outcomes",
                "in-process s",
                "trials/s",
                "ms/trial",
                "x sweeplab serial",
                "whole process s",
                "trials/s",
                "x sweeplab serial",
                "start-up s",
                "",
            ],
            rows,
        )
    )

    # W1 and W2
    parts.append(_w12(meta, res, "W1"))
    parts.append(_w12(meta, res, "W2"))

    # W3
    parts.append(
        f"\n## W3 scale: add {s['w3_side'] ** 2:,} points, then read back "
        f"{s['w3_done']:,} done trials\n\n"
        "`sweeplab add` and `sweeplab status` are timed as commands (interpreter start "
        "included); peak memory is the command's own maximum resident set. `results()` is "
        "timed in a script on its first call (which imports pandas, as it does for a user) "
        "and again.\n\n"
    )
    rows = []
    for r in (x for x in res if x["workload"] == "W3"):
        e = r["extra"]
        if r["mode"].startswith("fill"):
            what = (
                f"exp.run(serial): {_s(r['in_process_s'], 2)} s "
                f"({_rate(r['trials'], r['in_process_s'])} trials/s); "
                f"exp.add: {_s(e.get('add_s'), 2)} s"
            )
        elif r["mode"].startswith("results"):
            what = (
                f"first {_s(e.get('results_first_s'), 3)} s, again "
                f"{_s(e.get('results_warm_s'), 3)} s; Experiment.open "
                f"{_s(e.get('open_s'), 3)} s, exp.status() {_s(e.get('status_s'), 3)} s"
            )
        else:
            what = f"{_s(r['whole_s'], 3)} s"
        peak = f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] is not None else ""
        rows.append([r["mode"], what, peak, _status(r)])
    parts.append(_table(["step", "time", "peak MiB (the process)", ""], rows))

    # W4
    parts.append(
        f"\n## W4 server store: N `sweeplab worker -j 1` draining {s['w4_trials']:,} no-op "
        "trials from PostgreSQL\n\n"
        "Wall from starting the N workers to the last one's exit (interpreter starts "
        "included); trials/s = done trials / wall (the target's figure). *Draining* divides "
        "by the window the store recorded instead, from the first trial's start to the "
        "last one's finish: the rate once the workers are up. *First trial* and *last "
        "trial* are when those started and finished, counted from the workers' launch: "
        "before the first, the workers start; after the last, they record it and end. "
        "*CPU s each* is a worker's CPU time, its trial process included; *idle worker "
        "CPU s* is that of one more worker started on the drained store, which finds "
        "nothing to do: what every worker costs besides its trials. On this machine's "
        f"{meta.get('cores', '?')} cores, N workers cannot start their first trial before "
        "about N x that / cores.\n\n"
    )
    rows = []
    one = find(res, "W4", "sweeplab", "1 worker")
    one_rate = one["trials"] / one["whole_s"] if ok(one) and one["whole_s"] else None
    for r in (x for x in res if x["workload"] == "W4"):
        rate = r["trials"] / r["whole_s"] if ok(r) and r["whole_s"] else None
        counts = r["extra"].get("counts") or {}
        drain = r["extra"].get("drain_s")
        rows.append(
            [
                r["mode"].split(" ")[0],
                _s(r["whole_s"], 2),
                str(counts.get("done", "")),
                "" if rate is None else f"{rate:,.0f}",
                _ratio(rate, one_rate),
                _rate(counts.get("done", 0), drain),
                _s(r["extra"].get("first_trial_s"), 2),
                _s(r["extra"].get("last_trial_s"), 2),
                _s(r["extra"].get("cpu_s_per_worker"), 2),
                _s(r["extra"].get("idle_worker_cpu_s"), 2),
                " / ".join(str(x) for x in r["extra"].get("ran_per_worker") or []),
                _s(r["extra"].get("add_s"), 2),
                _status(r),
            ]
        )
    head = ["workers", "wall s", "done", "trials/s", "x 1 worker", "trials/s draining"]
    head += ["first trial s", "last trial s", "CPU s each", "idle worker CPU s"]
    head += ["ran by each", "add s", ""]
    parts.append(_table(head, rows))
    parts.append(
        "\nPeer versions: "
        + "; ".join(f"{k}: {v}" for k, v in meta["peers"].items())
        + f". Platform: {meta['platform']}.\n"
    )
    # one blank line between blocks, as Markdown wants
    return "\n".join(p.strip("\n") + "\n" for p in parts)


def _w12(meta: dict[str, Any], res: list[Row], workload: str) -> str:
    s = meta["sizes"]
    ideal = ideal_s(meta, workload)
    joblib = find(res, workload, "joblib")
    joblib_s = joblib["in_process_s"] if ok(joblib) else None
    if workload == "W1":
        head = (
            f"\n## W1 CPU: {s['w1_trials']} trials of pure-Python CPU on "
            f"{s['w1_workers']} workers\n\n"
            f"One trial measured {meta.get('w1_trial_s', 0) * 1000:.1f} ms on this machine "
            f"({meta.get('w1_loops')} loops, calibrated at the start of the run); ideal = "
            f"{s['w1_trials']} x t / {s['w1_workers']} = {_s(ideal, 2)} s.\n\n"
        )
    else:
        head = (
            f"\n## W2 waiting: {s['w2_trials']} trials of time.sleep({s['w2_sleep_s']}) on "
            f"{s['w2_slots']} thread slots\n\n"
            f"Ideal = {s['w2_trials']} x {s['w2_sleep_s']} / {s['w2_slots']} = "
            f"{_s(ideal, 3)} s.\n\n"
        )
    rows = []
    for r in (x for x in res if x["workload"] == workload):
        rows.append(
            [
                r["tool"],
                r["mode"],
                _s(r["in_process_s"]),
                _ratio(r["in_process_s"], ideal),
                _ratio(r["in_process_s"], joblib_s),
                _s(r["whole_s"], 2),
                _startup(r),
                _status(r),
            ]
        )
    return head + _table(
        ["tool", "mode", "wall s", "x ideal", "x joblib", "whole process s", "start-up s", ""],
        rows,
    )
