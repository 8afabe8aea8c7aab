"""Running one measured child process: wall clock, peak memory, a hard time limit.

Every measurement is a child process in its own process group. The clock runs from just
before the child is started to the moment it is reaped, so "whole process" includes the
interpreter's start and every import. ``os.wait4`` gives the child's own peak resident
memory. At the time limit the whole group is killed (a broken peer cannot hang the suite),
and once the child is reaped whatever it left behind in its group (pool workers, Ray's
daemons) is killed too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.protocol import RESULT_PREFIX

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    """How one child process went."""

    argv: list[str]
    exit_code: int
    wall_s: float
    peak_rss_mib: float
    #: CPU seconds (user + system), its own and those of the children it waited for
    cpu_s: float
    timed_out: bool
    #: what the script emitted on its ``BENCH_RESULT`` line, if it got that far
    result: dict[str, Any] | None
    log: Path

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def why(self) -> str:
        """One line saying why it failed, from the end of its log."""
        if self.timed_out:
            return "timed out"
        tail = _last_lines(self.log, 40)
        lines = [ln for ln in tail if ln.strip() and not ln.startswith(RESULT_PREFIX)]
        # the last line of a traceback names the error; otherwise say how it exited
        cause = lines[-1].strip() if lines else ""
        return f"exit {self.exit_code}: {cause}"[:300]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every child gets: the repository root importable, no stray settings."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    # the suite's stores are named on the command line; a user's default must not leak in
    env.pop("SWEEPLAB_STORE", None)
    env.pop("RAY_ADDRESS", None)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.update(extra or {})
    return env


def run_child(
    argv: list[str],
    *,
    cwd: Path,
    log: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> Child:
    """Run ``argv`` to completion (or the time limit) and measure it."""
    return run_children([argv], cwd=cwd, logs=[log], timeout_s=timeout_s, env=env)[0]


def run_children(
    argvs: list[list[str]],
    *,
    cwd: Path,
    logs: list[Path],
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> list[Child]:
    """Start every command at once and wait for all; each one's wall runs from the start
    of the first to its own exit, so the last to exit gives the wall of the whole group."""
    cwd.mkdir(parents=True, exist_ok=True)
    timed_out = threading.Event()
    procs: list[subprocess.Popen[bytes]] = []

    def expire() -> None:
        timed_out.set()
        for p in procs:
            _kill_group(p.pid)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    children = []
    try:
        t0 = time.perf_counter()
        for argv, log in zip(argvs, logs):
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "wb") as out:
                out.write(("$ " + " ".join(argv) + "\n").encode())
                out.flush()
                procs.append(
                    subprocess.Popen(
                        argv,
                        cwd=cwd,
                        env=env or child_env(),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        timer.start()
        for proc, argv, log in zip(procs, argvs, logs):
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
            children.append(
                Child(
                    argv=argv,
                    exit_code=proc.returncode,
                    wall_s=wall,
                    peak_rss_mib=usage.ru_maxrss / 1024,  # Linux reports KiB
                    cpu_s=usage.ru_utime + usage.ru_stime,
                    timed_out=timed_out.is_set(),
                    result=_result(log),
                    log=log,
                )
            )
    finally:
        timer.cancel()
        for proc in procs:  # pool workers or daemons it left behind, or all of it on Ctrl-C
            _kill_group(proc.pid)
            if proc.returncode is None:
                proc.wait()
    return children


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _result(log: Path) -> dict[str, Any] | None:
    found = None
    for line in _last_lines(log, 200):
        if line.startswith(RESULT_PREFIX):
            found = line[len(RESULT_PREFIX) :]
    return json.loads(found) if found else None


def _last_lines(path: Path, n: int) -> list[str]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        return f.read().decode(errors="replace").splitlines()[-n:]
