"""Run the benchmark suite: ``python -m benchmarks.run`` from the repository root.

Measures workloads W0-W4 on sweeplab (in this Python environment) and on its peers (each
in its own virtual environment under ``benchmarks/.envs/``, built on first use), all in
the same run, and writes ``results/latest.json``, ``results/latest.md`` and
``results/comparison.png``. A partial run (``--quick``, ``--only``, ``--workloads``)
writes to ``.work/results/`` instead, so it never replaces the committed full results.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import envs, report, suite
from benchmarks.harness import REPO, child_env
from benchmarks.measure import Context
from benchmarks.workloads import FULL, QUICK, calibrate

HERE = Path(__file__).resolve().parent
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
W0_FIRST = ("sweeplab", "joblib")
STEPS = {"W0": suite.w0, "W1": suite.w1, "W2": suite.w2, "W3": suite.w3, "W4": suite.w4}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repetition")
    parser.add_argument(
        "--only",
        default=",".join(suite.TOOLS),
        help="comma-separated tools to run (default: all): " + ", ".join(suite.TOOLS),
    )
    parser.add_argument("--workloads", default=",".join(STEPS), help="e.g. W0,W1")
    parser.add_argument("--out", type=Path, help="folder for the results")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("SWEEPLAB_BENCH_POSTGRES", DEFAULT_POSTGRES),
        help="PostgreSQL URL whose server W4 may create and drop its own databases on "
        "(default: $SWEEPLAB_BENCH_POSTGRES, else %(default)s)",
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=25,
        help="start no measurement after this many minutes; the rest is recorded as skipped "
        "(default: %(default)s)",
    )
    parser.add_argument("--no-chart", action="store_true", help="skip the matplotlib chart")
    args = parser.parse_args(argv)
    args.tools = tuple(t for t in suite.TOOLS if t in _names(args.only))
    args.steps = tuple(w for w in STEPS if w in _names(args.workloads.upper()))
    unknown = (_names(args.only) - set(suite.TOOLS)) | (_names(args.workloads.upper()) - set(STEPS))
    if unknown or not args.tools or not args.steps:
        parser.error(f"unknown or no tools/workloads: {sorted(unknown) or args.only}")
    partial = args.quick or args.tools != suite.TOOLS or args.steps != tuple(STEPS)
    if args.out is None:
        args.out = HERE / (".work/results" if partial else "results")
    args.partial = partial
    return args


def _names(text: str) -> set[str]:
    return {t.strip() for t in text.split(",") if t.strip()}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    sizes = QUICK if args.quick else FULL
    say(f"sweeplab benchmarks: {', '.join(args.steps)} on {', '.join(args.tools)}")
    wanted_envs = set(args.tools) | (set() if args.no_chart else {"report"})
    built = envs.ensure_all(sorted(wanted_envs), say)
    for env in built.values():
        if env.error:
            say(f"  environment {env.name}: {env.error}")
    own = built.get("sweeplab")
    if own is not None and own.python is None:
        say(f"  sweeplab is measured in {sys.executable} instead")

    work = HERE / ".work" / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ctx = Context(
        sizes=sizes,
        work=work,
        envs=built,
        tools=args.tools,
        postgres=args.postgres,
        log=say,
    )
    if own is not None and own.python is not None:
        ctx.python = own.python
    _compile_bytecode()
    _settle(say)
    meta = _machine(args, sizes)
    if "W1" in args.steps:
        ctx.loops, ctx.trial_s = calibrate(sizes.w1_trial_s)
        say(f"  W1 calibration: {ctx.loops} loops = {ctx.trial_s * 1000:.1f} ms per trial")
        meta["w1_loops"], meta["w1_trial_s"] = ctx.loops, ctx.trial_s
    if "W0" in args.steps and "sweeplab" in args.tools:
        meta.update(suite.python_start(ctx))
    ctx.deadline = started + args.budget_min * 60
    meta["load_by_step"] = []
    # Each workload's tools run back to back, so their ratios are taken under the same
    # conditions; only W0's slow peers (minutes each: Hydra, Optuna) wait until the end,
    # so that a peer which eats the time budget cannot cost sweeplab's own figures.
    late = tuple(t for t in args.tools if t not in W0_FIRST)
    plan = [(step, args.tools if step != "W0" else W0_FIRST) for step in args.steps]
    if "W0" in args.steps and late:
        plan.append(("W0", late))
    try:
        for step, tools in plan:
            ctx.tools = tuple(t for t in tools if t in args.tools and t in suite.OFFERS[step])
            if not ctx.tools:
                continue
            load = os.getloadavg()[0]
            meta["load_by_step"].append({"step": step, "tools": list(ctx.tools), "load": load})
            say(f"{step} on {', '.join(ctx.tools)} (load average {load:.2f}):")
            STEPS[step](ctx)
    finally:
        suite.cleanup(work)
    ctx.results.sort(key=lambda m: m.workload)  # stable: each workload's rows keep their order
    meta["load_after"] = list(os.getloadavg())
    meta["duration_s"] = time.monotonic() - started

    args.out.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {"meta": meta, "results": [m.as_dict() for m in ctx.results]}
    data["targets"] = report.targets(data)
    json_path = args.out / "latest.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path = args.out / "latest.md"
    md_path.write_text(report.markdown(data))
    say(f"wrote {json_path.relative_to(REPO)} and {md_path.relative_to(REPO)}")
    if not args.no_chart:
        _chart(built.get("report"), json_path, args.out / "comparison.png")
    say(f"done in {meta['duration_s']:.0f} s")
    return 0


def _compile_bytecode() -> None:
    """Measure sweeplab as it runs once installed: with its modules' bytecode compiled.

    pip compiles a package's bytecode when it installs it (the peers' environments have
    theirs), but an editable install under PYTHONDONTWRITEBYTECODE=1 never writes any, and
    then every measured process would compile sweeplab's source again (7 ms in a run's
    first call, more in every command)."""
    for folder in (HERE.parent / "src", HERE):
        compileall.compile_dir(str(folder), quiet=1)


def _settle(log, quiet: float = 1.0, limit_s: float = 120.0) -> None:
    """Wait (up to ``limit_s``) for the 1-minute load average to fall below ``quiet``: the
    first figures of a run that just built environments are not taken under pip's load."""
    deadline = time.monotonic() + limit_s
    load = os.getloadavg()[0]
    if load >= quiet:
        log(f"  waiting for the machine to settle (load average {load:.2f})")
    while load >= quiet and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]


def _chart(env: envs.Env | None, json_path: Path, png: Path) -> None:
    """matplotlib lives in the benchmark's own environment, never in sweeplab's."""
    if env is None or env.python is None:
        say(f"no chart: {env.error if env else 'no report environment'}")
        return
    done = subprocess.run(
        [str(env.python), "-m", "benchmarks.chart", str(json_path), str(png)],
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        say(f"no chart: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
    else:
        say(f"wrote {png.relative_to(REPO)}")


def _machine(args: argparse.Namespace, sizes: object) -> dict[str, object]:
    """What the numbers were measured on, so a reader can tell whether to compare."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    pins = {}
    for name in suite.PEERS:
        req = envs.requirements(name)
        if req.exists():
            pins[name] = ", ".join(ln.strip() for ln in req.read_text().splitlines() if ln.strip())
    from sweeplab import __version__

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:]),
        "partial": args.partial,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sweeplab": f"{__version__} ({commit}{', src/ modified' if dirty else ''})",
        "peers": pins,
        "sizes": sizes.as_dict(),  # type: ignore[attr-defined]
        "load_before": list(os.getloadavg()),
    }


if __name__ == "__main__":
    raise SystemExit(main())
