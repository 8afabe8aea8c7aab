"""A million-point grid streams into SQLite: `sweeplab add` stays small in memory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.acceptance.support import counts

PEAK_RSS_LIMIT_MIB = 300


@pytest.mark.slow  # about 30 s: `-m "not slow"` leaves it out
def test_adding_a_million_points_keeps_memory_small(study, sweeplab, cli_env, tmp_path):
    args = ["add", "study.py:point", "a=range(0,1000)", "b=range(0,1000)"]
    out, err = tmp_path / "add.out", tmp_path / "add.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        adder = subprocess.Popen(
            [sys.executable, "-m", "sweeplab", *args, "--store", "sqlite:///big.db"],
            cwd=tmp_path,
            env=cli_env,
            stdout=stdout,
            stderr=stderr,
        )
        # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would mix in every child
        # this test process ever waited for)
        try:
            _, wait_status, usage = os.wait4(adder.pid, 0)
        except BaseException:
            adder.kill()
            adder.wait()
            raise
    adder.returncode = os.waitstatus_to_exitcode(wait_status)
    assert adder.returncode == 0, err.read_text()
    said = "added 1000000 trials to 'point' (1000000 in all) in sqlite:///big.db\n"
    assert out.read_text() == said
    peak_mib = usage.ru_maxrss / 1024  # KiB on Linux
    assert peak_mib < PEAK_RSS_LIMIT_MIB, f"peak RSS {peak_mib:.0f} MiB"

    url = f"sqlite:///{tmp_path / 'big.db'}"
    assert counts(url, "point") == {"pending": 1_000_000, "running": 0, "done": 0, "failed": 0}
    status = sweeplab("status", "--store", "sqlite:///big.db")
    assert status.returncode == 0, status.stderr
    (row,) = [line for line in status.stdout.splitlines() if " point " in line]
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    # experiment, trials, pending, running, done, failed
    assert cells[:6] == ["point", "1000000", "1000000", "0", "0", "0"]
