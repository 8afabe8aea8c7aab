"""What the suite measures: each workload on sweeplab and on every peer that offers it."""

from __future__ import annotations

import re
import shutil
import statistics
import time
from pathlib import Path

from benchmarks import postgres
from benchmarks.harness import Child, run_child, run_children
from benchmarks.measure import (
    Context,
    Measurement,
    command,
    rel,
    script,
    sqlite_url,
    sweeplab_cli,
)

WORKLOADS = Path(__file__).resolve().parent / "workloads.py"
PEERS = ("joblib", "hydra", "pyexperimenter", "optuna", "dask", "ray")
TOOLS = ("sweeplab", *PEERS)

#: which tools each workload is measured on
OFFERS = {
    "W0": ("sweeplab", "joblib", "hydra", "pyexperimenter", "optuna", "ray"),
    "W1": ("sweeplab", "joblib", "hydra", "pyexperimenter", "dask", "ray"),
    "W2": ("sweeplab", "joblib", "dask"),
    "W3": ("sweeplab",),
    "W4": ("sweeplab",),
}


# -- W0: overhead ----------------------------------------------------------------------
def w0(ctx: Context) -> None:
    s = ctx.sizes
    grid = {"a": s.w0_a, "b": s.w0_b}
    n = s.w0_trials
    if ctx.wants("sweeplab"):
        for backend, workers, mode in (("serial", 1, "serial"), ("processes", 2, "processes(2)")):
            m = script(
                ctx,
                "sweeplab",
                "W0",
                mode,
                n,
                {**grid, "backend": backend, "workers": workers},
                repeat=s.repeat,
            )
            # the whole-process clock is the command a user types, adding and running
            script_whole = m.samples.pop("whole_s", [])
            m.extra["script_whole_s"] = statistics.median(script_whole) if script_whole else None
            m.whole_s = None
            if m.status == "ok":
                command(
                    ctx,
                    m,
                    lambda cwd, backend=backend, workers=workers: [
                        *sweeplab_cli(ctx),
                        *("run", f"{WORKLOADS}:noop"),
                        *(f"a=range(0,{s.w0_a})", f"b=range(0,{s.w0_b})"),
                        *("--backend", backend, "-j", str(workers)),
                        *("--store", sqlite_url(cwd, "bench.db"), "--no-progress"),
                    ],
                    repeat=s.repeat,
                    timeout_s=120,
                    expect=lambda c: _ran_all(c, n),
                )
            ctx.add(m)
    if ctx.wants("joblib"):
        for workers, mode in ((1, "n_jobs=1"), (2, "n_jobs=2 (loky)")):
            ctx.add(
                script(
                    ctx,
                    "joblib",
                    "W0",
                    mode,
                    n,
                    {**grid, "workers": workers},
                    env="joblib",
                    repeat=s.repeat,
                )
            )
    peers = (
        ("hydra", "basic launcher", {}, 600),
        ("pyexperimenter", "n_jobs=1", {"workers": 1}, 300),
        ("optuna", "GridSampler, n_jobs=1", {}, 600),
        ("ray", "tasks, num_cpus=2", {"workers": 2}, 300),
    )
    for tool, mode, params, timeout_s in peers:
        if ctx.wants(tool):
            ctx.add(
                script(ctx, tool, "W0", mode, n, {**grid, **params}, env=tool, timeout_s=timeout_s)
            )


def _ran_all(child: Child, n: int) -> str | None:
    text = child.log.read_text(errors="replace")
    return None if f"({n} done," in text else f"the run did not report {n} trials done"


def python_start(ctx: Context) -> dict[str, float | None]:
    """The floor under every whole-process figure: the interpreter and sweeplab's import."""
    out: dict[str, float | None] = {}
    for label, code in (("python_start_s", "pass"), ("import_sweeplab_s", "import sweeplab")):
        m = Measurement("W0", "python", label, 0)
        argv = [str(ctx.python), "-c", code]
        command(ctx, m, lambda cwd, argv=argv: argv, repeat=5, timeout_s=60)
        out[label] = m.whole_s
    return out


# -- W1: CPU-bound trials --------------------------------------------------------------
def w1(ctx: Context) -> None:
    s = ctx.sizes
    n, workers = s.w1_trials, s.w1_workers
    p = {"trials": n, "loops": ctx.loops, "workers": workers}
    if ctx.wants("sweeplab"):
        ctx.add(script(ctx, "sweeplab", "W1", f"processes({workers})", n, p, repeat=s.repeat))
    if ctx.wants("joblib"):
        mode = f"n_jobs={workers} (loky)"
        ctx.add(script(ctx, "joblib", "W1", mode, n, p, env="joblib", repeat=s.repeat))
    peers = (
        ("hydra", f"joblib launcher, n_jobs={workers}", 600),
        ("pyexperimenter", f"n_jobs={workers}", 300),
        ("dask", f"LocalCluster, {workers} workers", 300),
        ("ray", f"tasks, num_cpus={workers}", 300),
    )
    for tool, mode, timeout_s in peers:
        if ctx.wants(tool):
            ctx.add(script(ctx, tool, "W1", mode, n, p, env=tool, timeout_s=timeout_s))


# -- W2: waiting trials ----------------------------------------------------------------
def w2(ctx: Context) -> None:
    s = ctx.sizes
    n, slots = s.w2_trials, s.w2_slots
    p = {"trials": n, "seconds": s.w2_sleep_s, "workers": slots}
    if ctx.wants("sweeplab"):
        ctx.add(script(ctx, "sweeplab", "W2", f"threads({slots})", n, p, repeat=s.repeat))
    if ctx.wants("joblib"):
        mode = f"threads, n_jobs={slots}"
        ctx.add(script(ctx, "joblib", "W2", mode, n, p, env="joblib", repeat=s.repeat))
    if ctx.wants("dask"):
        mode = f"LocalCluster, 1 worker x {slots} threads"
        ctx.add(script(ctx, "dask", "W2", mode, n, p, env="dask", repeat=s.repeat))


# -- W3: scale -------------------------------------------------------------------------
def w3(ctx: Context) -> None:
    if not ctx.wants("sweeplab"):
        return
    s = ctx.sizes
    side, points = s.w3_side, s.w3_side**2
    big = ctx.scratch("W3-store")
    big_url = sqlite_url(big, "w3.db")

    add = Measurement("W3", "sweeplab", f"add {points:,} points", points)
    command(
        ctx,
        add,
        lambda cwd: [
            *sweeplab_cli(ctx),
            *("add", f"{WORKLOADS}:noop", f"a=range(0,{side})", f"b=range(0,{side})"),
            *("--store", big_url),
        ],
        repeat=1,
        timeout_s=600,
        expect=lambda c: None if f"added {points} trials" in c.log.read_text() else "added fewer",
    )
    ctx.add(add)
    if add.status == "ok":
        status_big = Measurement("W3", "sweeplab", f"status, {points:,} pending", points)
        command(
            ctx,
            status_big,
            lambda cwd: [*sweeplab_cli(ctx), "status", "--store", big_url],
            repeat=s.repeat,
            timeout_s=120,
        )
        ctx.add(status_big)
    for path in big.glob("w3.db*"):  # hundreds of MB, needed no more
        path.unlink()

    done_n = s.w3_done
    folder = ctx.scratch("W3-done-store")
    url = sqlite_url(folder, "done.db")
    fill = script(
        ctx,
        "sweeplab",
        "W3",
        f"fill: run {done_n:,} no-op trials",
        done_n,
        {"a": s.w3_done_a, "b": s.w3_done_b, "store": url},
        script_workload="W3-fill",
        timeout_s=600,
    )
    ctx.add(fill)
    if fill.status != "ok":
        return
    status_done = Measurement("W3", "sweeplab", f"status, {done_n:,} done", done_n)
    command(
        ctx,
        status_done,
        lambda cwd: [*sweeplab_cli(ctx), "status", "--store", url],
        repeat=s.repeat,
        timeout_s=120,
    )
    ctx.add(status_done)
    ctx.add(
        script(
            ctx,
            "sweeplab",
            "W3",
            f"results() of {done_n:,}",
            done_n,
            {"name": "noop", "store": url},
            script_workload="W3-read",
            repeat=s.repeat,
            timeout_s=300,
        )
    )


# -- W4: a server store, many workers ---------------------------------------------------
def w4(ctx: Context) -> None:
    if not ctx.wants("sweeplab"):
        return
    s = ctx.sizes
    n = s.w4_trials
    reason = _w4_unavailable(ctx)
    if reason:
        for workers in s.w4_workers:
            m = Measurement("W4", "sweeplab", f"{workers} worker(s), PostgreSQL", n)
            m.status, m.note = "not available", reason
            ctx.add(m)
        return
    admin = ctx.postgres
    for workers in s.w4_workers:
        m = Measurement("W4", "sweeplab", f"{workers} worker(s), PostgreSQL", n)
        database = f"sweeplab_bench_w4_{workers}"
        url = postgres.recreate(admin, database)
        try:
            _w4_once(ctx, m, url, workers)
        finally:
            postgres.drop(admin, database)
        ctx.add(m)


def _w4_once(ctx: Context, m: Measurement, url: str, workers: int) -> None:
    n = m.trials
    command(
        ctx,
        m,
        lambda cwd: [
            *sweeplab_cli(ctx),
            "add",
            f"{WORKLOADS}:noop",
            f"a=range(0,{n})",
            "--store",
            url,
        ],
        repeat=1,
        timeout_s=300,
        key="add_s",
    )
    if m.status != "ok":
        return
    m.extra["add_s"] = m.samples.pop("add_s")[0]
    limit = ctx.limit(m, 600)
    if limit is None:
        return
    cwd = ctx.scratch(f"W4-{workers}-workers")
    argv = [*sweeplab_cli(ctx), "worker", "-j", "1", "--store", url, "--no-progress"]
    launched = time.time()  # the store's clock is this machine's: the timeline below
    children = run_children(
        [argv] * workers,
        cwd=cwd,
        logs=[cwd / f"worker-{i}.txt" for i in range(workers)],
        timeout_s=limit,
    )
    broken = [c for c in children if not c.ok]
    if broken:
        m.status = "timed out" if broken[0].timed_out else "failed"
        m.note = (
            f"{len(broken)} of {workers} workers: {broken[0].why()} (log: {rel(broken[0].log)})"
        )
        return
    # how the work was shared: each worker prints "worker: ran N trials ..."
    m.extra["ran_per_worker"] = [
        int(found.group(1)) if found else None
        for found in (re.search(r"ran (\d+) trials", c.log.read_text()) for c in children)
    ]
    m.whole_s = max(c.wall_s for c in children)
    m.samples["whole_s"] = [m.whole_s]
    m.peak_rss_mib = max(c.peak_rss_mib for c in children)
    m.extra["cpu_s_per_worker"] = sum(c.cpu_s for c in children) / workers
    # what any worker costs before and after its trials: one more, on the drained store,
    # finds nothing to do (interpreter, imports, opening the store, its trial process, exit)
    idle = run_child(argv, cwd=cwd, log=cwd / "worker-idle.txt", timeout_s=120)
    if idle.ok:
        m.extra["idle_worker_cpu_s"] = idle.cpu_s
    count = script(
        ctx,
        "sweeplab",
        "W4",
        "count",
        n,
        {"name": "noop", "store": url},
        script_workload="counts",
        timeout_s=120,
    )
    m.extra["counts"] = count.extra.get("counts")
    m.extra["drain_s"] = count.extra.get("drain_s")
    # where the wall goes: workers starting, the drain, and ending after the last trial
    for key, at in (("first_trial_s", "first_start"), ("last_trial_s", "last_finish")):
        if count.extra.get(at) is not None:
            m.extra[key] = count.extra[at] - launched
    if count.status != "ok":
        m.status, m.note = count.status, count.note


def _w4_unavailable(ctx: Context) -> str | None:
    """Why W4 cannot run here, or None."""
    probe = ctx.scratch("W4-probe")
    child = run_child(
        [*sweeplab_cli(ctx), "worker", "--help"], cwd=probe, log=probe / "log.txt", timeout_s=60
    )
    if not child.ok:
        return f"`sweeplab worker --help` failed ({child.why()})"
    return postgres.unavailable(ctx.postgres)


def cleanup(work: Path) -> None:
    """Drop the stores (large) and keep the logs of the last run for reading."""
    for path in work.rglob("*"):
        if path.is_file() and re.search(r"\.db(-wal|-shm|-journal)?$", path.name):
            path.unlink()
    for folder in work.rglob("multirun"):
        shutil.rmtree(folder, ignore_errors=True)
