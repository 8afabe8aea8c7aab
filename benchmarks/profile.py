"""Where a command's time goes: ``python -m benchmarks.profile -- sweeplab status --store URL``.

Samples the command with py-spy (from the benchmark's own ``profile`` environment, built on
first use; sweeplab's environment is left alone), child processes included, and prints a
summary: the share spent importing modules and which packages those imports were, the
functions of sweeplab that hold the most time (inclusive), and the hottest frames overall
(self time). ``--raw FILE`` keeps the collapsed stacks for a flame graph.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks import envs
from benchmarks.harness import child_env


def collapse(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw format: ``frame;frame;...;frame COUNT`` per line."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _file(frame: str) -> str:
    return frame[frame.rfind("(") + 1 :].rsplit(":", 1)[0]


def _function(frame: str) -> str:
    """``name (file)`` without the line number, so a function's lines add up."""
    return f"{frame[: frame.rfind('(')].strip()} ({_file(frame)})"


def summary(stacks: list[tuple[list[str], int]], top: int = 15, within: str = "") -> str:
    """The summary of the samples; with ``within``, of those under a frame whose function
    is named so (``Experiment.run``: the run without the interpreter start and imports)."""
    if within:
        stacks = [(f, n) for f, n in stacks if any(x.startswith(within + " ") for x in f)]
    total = sum(n for _, n in stacks) or 1
    imports: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    for frames, n in stacks:
        # with --subprocesses each stack starts with a "process PID" frame
        frames = [f for f in frames if not f.startswith("process ")] or ["(no Python frame) (-)"]
        if any(f.startswith("_find_and_load ") for f in frames):
            modules = [f for f in frames if f.startswith("<module> ")]
            # the innermost module being executed names the package that costs the time
            package = _file(modules[-1]).split("/")[0] if modules else "?"
            imports[package] += n
        for name in {_function(f) for f in frames if _file(f).startswith("sweeplab/")}:
            inclusive[name] += n
        self_time[_function(frames[-1])] += n

    def block(title: str, counts: Counter[str]) -> list[str]:
        lines = [title]
        for name, n in counts.most_common(top):
            lines.append(f"  {100 * n / total:5.1f}%  {name}")
        return lines

    lines = [f"{total} samples" + (f" under {within}" if within else "")]
    lines += block(
        f"imports: {100 * sum(imports.values()) / total:.1f}% of the samples, by package",
        imports,
    )
    lines += block("sweeplab functions, inclusive", inclusive)
    lines += block("hottest frames, self", self_time)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--raw", type=Path, help="keep the collapsed stacks here")
    parser.add_argument(
        "--within", default="", help="only samples under this function, e.g. Experiment.run"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to profile after --")
    env = envs.ensure("profile", print)
    if env.python is None:
        raise SystemExit(f"no py-spy: {env.error}")
    py_spy = env.python.parent / "py-spy"
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw or Path(tmp) / "stacks.txt"
        done = subprocess.run(
            [
                *(str(py_spy), "record", "--subprocesses", "-r", str(args.rate)),
                *("-f", "raw", "-o", str(raw), "--", *command),
            ],
            env=child_env(),
            stdout=subprocess.DEVNULL,
        )
        if not raw.exists():
            raise SystemExit(f"py-spy wrote nothing (exit {done.returncode})")
        print(summary(collapse(raw), args.top, args.within))
    return 0


if __name__ == "__main__":
    sys.exit(main())
