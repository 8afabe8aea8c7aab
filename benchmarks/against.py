"""W4 against an earlier revision, on this machine, now: ``python -m benchmarks.against REV``.

Ratios between runs on different days say little when the machine's speed moves (the W1
calibration moved 2.3 times between two sessions of the same day). This runs W4's
N workers draining 10,000 no-op trials from PostgreSQL with this checkout's code and
with REV's (a git worktree), taking turns, in sweeplab's benchmark environment (only
``src/`` differs, by PYTHONPATH), and prints each wall from the launch to the last exit.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import envs, postgres
from benchmarks.harness import REPO, child_env
from benchmarks.run import DEFAULT_POSTGRES

TRIALS = 10_000
DATABASE = "sweeplab_bench_against"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.against", description=__doc__)
    parser.add_argument("revision", help="a git revision, e.g. 0e8c7ad or HEAD~3")
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 1])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("SWEEPLAB_BENCH_POSTGRES"))
    args = parser.parse_args(argv)
    python = envs.ensure("sweeplab").python
    if python is None:
        raise SystemExit("sweeplab's benchmark environment could not be built")
    admin = args.postgres or DEFAULT_POSTGRES
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), args.revision],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        try:
            sources = {args.revision: tree / "src", "this checkout": REPO / "src"}
            for src in sources.values():  # as installed: bytecode compiled (run.py says why)
                compileall.compile_dir(str(src), quiet=1)
            for workers in args.workers:
                walls: dict[str, list[float]] = {name: [] for name in sources}
                for _ in range(args.repeat):
                    for name, src in sources.items():  # taking turns
                        walls[name].append(_drain(python, src, admin, workers, Path(scratch)))
                line = ", ".join(
                    f"{name} {statistics.median(w):.2f} s ({' / '.join(f'{x:.2f}' for x in w)})"
                    for name, w in walls.items()
                )
                before, now = (statistics.median(w) for w in walls.values())
                print(f"{workers} worker(s): {line}; {before / now:.2f}x")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO)
            postgres.drop(admin, DATABASE)


def _drain(python: Path, src: Path, admin: str, workers: int, cwd: Path) -> float:
    """Seconds from starting ``workers`` workers to the last one's exit, all trials done."""
    url = postgres.recreate(admin, DATABASE)
    env = child_env({"PYTHONPATH": f"{src}{os.pathsep}{REPO}"})
    cli = [str(python), "-m", "sweeplab"]
    target = f"{REPO / 'benchmarks' / 'workloads.py'}:noop"
    add = [*cli, "add", target, f"a=range(0,{TRIALS})", "--store", url]
    subprocess.run(add, cwd=cwd, env=env, check=True, capture_output=True)
    worker = [*cli, "worker", "-j", "1", "--store", url, "--no-progress"]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(worker, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit(f"a worker failed ({src})")
    wall = time.perf_counter() - started
    if postgres.done_count(url) != TRIALS:
        raise SystemExit(f"not every trial was done ({src})")
    return wall


if __name__ == "__main__":
    main()
