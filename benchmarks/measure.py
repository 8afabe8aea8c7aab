"""Measuring: a measurement's record, the run's shared context, and the two ways to time.

Every measurement is a fresh child process (``harness``) with a fresh store. It has up to
two clocks: *in-process*, which the script itself reads around the call that runs the
trials (worker pools and a tool's per-run set-up included; interpreter start, imports
and, for Dask and Ray, the cluster's start excluded and reported apart), and *whole
process*, from starting the interpreter to its exit. Failures are recorded with their
reason and the suite goes on.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.envs import Env
from benchmarks.harness import REPO, Child, run_child
from benchmarks.workloads import Sizes

#: below this many seconds of the suite's budget, nothing more is started
MIN_LEFT_S = 20


@dataclass
class Measurement:
    """One tool on one workload in one mode; the times are medians over the repetitions."""

    workload: str
    tool: str
    mode: str
    trials: int
    #: ok, failed, timed out, incomplete (fewer trials completed than asked), not available
    #: or skipped (the suite's time budget was spent)
    status: str = "ok"
    in_process_s: float | None = None
    whole_s: float | None = None
    peak_rss_mib: float | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What every measurement of one suite run shares."""

    sizes: Sizes
    work: Path
    envs: dict[str, Env]
    tools: tuple[str, ...]
    postgres: str
    log: Callable[[str], None]
    #: the interpreter sweeplab is measured in: its own environment, as each peer has
    python: Path = Path(sys.executable)
    #: W1's calibrated loop count and the measured seconds of one trial
    loops: int = 0
    trial_s: float = 0.0
    #: time.monotonic() after which nothing more is started (the suite's time budget)
    deadline: float = math.inf
    results: list[Measurement] = field(default_factory=list)
    _dirs: int = 0

    def scratch(self, label: str) -> Path:
        self._dirs += 1
        path = self.work / f"{self._dirs:03d}-{re.sub(r'[^A-Za-z0-9]+', '-', label).strip('-')}"
        path.mkdir(parents=True)
        return path

    def add(self, m: Measurement) -> Measurement:
        self.results.append(m)
        self.log(_describe(m))
        return m

    def wants(self, tool: str) -> bool:
        return tool in self.tools

    def limit(self, m: Measurement, timeout_s: float) -> float | None:
        """The time limit for the next child of ``m``, or None (and ``m`` marked skipped)
        when the suite's budget is spent."""
        left = self.deadline - time.monotonic()
        if left < MIN_LEFT_S:
            m.status = "skipped"
            m.note = "the suite's time budget (--budget-min) was spent"
            return None
        return min(timeout_s, left)


def sweeplab_cli(ctx: Context) -> list[str]:
    """The ``sweeplab`` command of sweeplab's environment (no shim that adds its own start)."""
    script = ctx.python.with_name("sweeplab")
    return [str(script)] if script.exists() else [str(ctx.python), "-m", "sweeplab"]


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name}"


# -- the generic measurement -----------------------------------------------------------
def script(
    ctx: Context,
    tool: str,
    workload: str,
    mode: str,
    trials: int,
    params: dict[str, Any],
    *,
    env: str | None = None,
    repeat: int = 1,
    timeout_s: float = 180,
    script_workload: str | None = None,
) -> Measurement:
    """Run a benchmark script ``repeat`` times; keep both clocks and whatever it reports."""
    m = Measurement(workload, tool, mode, trials)
    if env is None:
        python, module = str(ctx.python), "benchmarks.sweeplab_bench"
    else:
        found = ctx.envs.get(env)
        if found is None or found.python is None:
            m.status = "not available"
            m.note = found.error if found else "environment not built"
            return m
        python, module = str(found.python), f"benchmarks.peers.{tool}_peer"
    extra: dict[str, list[Any]] = {}
    # a peer that crashes on a busy machine (Ray's start-up has a deadline of its own) gets
    # one more try, and the first failure stays in the record
    retries = 0 if env is None else 1
    rep = 0
    while rep < repeat:
        limit = ctx.limit(m, timeout_s)
        if limit is None:
            break
        cwd = ctx.scratch(f"{workload}-{tool}-{mode}-{rep}")
        p = {**params, "workload": script_workload or workload}
        if env is None:
            p.setdefault("store", sqlite_url(cwd, "bench.db"))
        child = run_child(
            [python, "-m", module, json.dumps(p)], cwd=cwd, log=cwd / "log.txt", timeout_s=limit
        )
        if not _accept(m, child, trials):
            if m.status != "failed" or retries == 0:
                break
            retries -= 1
            m.extra["failed_once"] = m.note
            ctx.log(f"  {workload} {tool} {mode}: failed, trying once more ({m.note})")
            m.status, m.note = "ok", ""
            continue
        rep += 1
        result = dict(child.result or {})
        wall = result.pop("wall_s", None)
        if wall is not None:
            m.samples.setdefault("in_process_s", []).append(wall)
        m.samples.setdefault("whole_s", []).append(child.wall_s)
        m.samples.setdefault("peak_rss_mib", []).append(child.peak_rss_mib)
        for key, value in result.items():
            extra.setdefault(key, []).append(value)
    _settle(m)
    for key, values in extra.items():
        numeric = all(isinstance(v, int | float) for v in values)
        m.extra[key] = statistics.median(values) if numeric else values[-1]
    return m


def command(
    ctx: Context,
    m: Measurement,
    argv: Callable[[Path], list[str]],
    *,
    repeat: int,
    timeout_s: float,
    key: str = "whole_s",
    expect: Callable[[Child], str | None] | None = None,
) -> None:
    """Time a command line as a user runs it; ``argv`` gets a fresh folder each time."""
    for rep in range(repeat):
        limit = ctx.limit(m, timeout_s)
        if limit is None:
            break
        cwd = ctx.scratch(f"{m.workload}-{m.tool}-{m.mode}-cmd-{rep}")
        child = run_child(argv(cwd), cwd=cwd, log=cwd / "log.txt", timeout_s=limit)
        if not _accept(m, child, None):
            break
        problem = expect(child) if expect else None
        if problem:
            m.status, m.note = "incomplete", problem
            break
        m.samples.setdefault(key, []).append(child.wall_s)
        m.samples.setdefault("peak_rss_mib", []).append(child.peak_rss_mib)
    _settle(m)


def _accept(m: Measurement, child: Child, trials: int | None) -> bool:
    if not child.ok:
        m.status = "timed out" if child.timed_out else "failed"
        m.note = f"{child.why()} (log: {rel(child.log)})"
        return False
    if trials is not None:
        completed = (child.result or {}).get("completed")
        if completed != trials:
            m.status = "incomplete"
            m.note = f"{completed} of {trials} trials completed (log: {rel(child.log)})"
            return False
    return True


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _settle(m: Measurement) -> None:
    for key in ("in_process_s", "whole_s"):
        if m.samples.get(key):
            setattr(m, key, statistics.median(m.samples[key]))
    if m.samples.get("peak_rss_mib"):
        m.peak_rss_mib = max(m.samples["peak_rss_mib"])


def _describe(m: Measurement) -> str:
    head = f"  {m.workload} {m.tool:<15} {m.mode:<28}"
    if m.status != "ok":
        return f"{head} {m.status.upper()}: {m.note}"
    parts = []
    if m.in_process_s is not None:
        parts.append(f"in-process {m.in_process_s:.3f} s")
    if m.whole_s is not None:
        parts.append(f"whole {m.whole_s:.3f} s")
    if m.workload in ("W0", "W1", "W2", "W4") and (m.in_process_s or m.whole_s):
        parts.append(f"{m.trials / (m.in_process_s or m.whole_s or 1):,.0f} trials/s")
    return f"{head} " + ", ".join(parts)
