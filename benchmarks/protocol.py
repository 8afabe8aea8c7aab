"""What every benchmark script shares: its parameters in, one result line out.

Standard library only, because these scripts run in the peers' environments. The suite
passes the parameters as one JSON argument, and reads the last line of stdout that
starts with ``RESULT_PREFIX``; everything else a tool prints is kept as a log.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "


def params() -> dict[str, Any]:
    """The JSON object given as the script's only argument."""
    if len(sys.argv) != 2:
        raise SystemExit('usage: python -m benchmarks.peers.NAME \'{"workload": "W0", ...}\'')
    return json.loads(sys.argv[1])


def emit(**result: Any) -> None:
    """Hand the measurement back to the suite."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["s"]`` is the seconds the block took."""
    box: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - t0


def main(workloads: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Run the workload the parameters name and emit what it measured."""
    p = params()
    run = workloads.get(p["workload"])
    if run is None:
        raise SystemExit(f"this script has no workload {p['workload']!r}: {sorted(workloads)}")
    emit(**run(p))
