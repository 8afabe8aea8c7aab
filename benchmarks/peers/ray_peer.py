"""Ray tasks on a private local Ray instance (never one already running on the machine);
keeps nothing once the process ends. Starting Ray is timed apart from the trials."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import ray

from benchmarks import workloads as w
from benchmarks.protocol import main, stopwatch


def _run(p: dict[str, Any], fn: Any, calls: list[tuple[Any, ...]]) -> dict[str, Any]:
    # a short folder of our own: Ray's socket paths must stay under 108 bytes
    temp_dir = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    try:
        with stopwatch() as start:
            ray.init(
                address="local",
                num_cpus=p["workers"],
                include_dashboard=False,
                log_to_driver=False,
                object_store_memory=256 * 1024**2,
                _temp_dir=temp_dir,
            )
        try:
            task = ray.remote(fn)
            with stopwatch() as t:
                out = ray.get([task.remote(*args) for args in calls])
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return {"wall_s": t["s"], "startup_s": start["s"], "completed": len(out)}


def w0(p: dict[str, Any]) -> dict[str, Any]:
    return _run(p, w.noop, [(a, b) for a in range(p["a"]) for b in range(p["b"])])


def w1(p: dict[str, Any]) -> dict[str, Any]:
    return _run(p, w.burn, [(i, p["loops"]) for i in range(p["trials"])])


if __name__ == "__main__":
    main({"W0": w0, "W1": w1})
