"""Dask distributed on a LocalCluster: ``client.map`` then ``gather``; keeps nothing once
the process ends. Starting the cluster is timed apart from the trials."""

from __future__ import annotations

from typing import Any

from dask.distributed import Client, LocalCluster

from benchmarks import workloads as w
from benchmarks.protocol import main, stopwatch


def _run(p: dict[str, Any], n_workers: int, threads: int, fn: Any, *args: Any) -> dict[str, Any]:
    with stopwatch() as start:
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    try:
        with stopwatch() as t:
            futures = client.map(fn, range(p["trials"]), *args)
            out = client.gather(futures)
    finally:
        client.close()
        cluster.close()
    return {"wall_s": t["s"], "startup_s": start["s"], "completed": len(out)}


def w1(p: dict[str, Any]) -> dict[str, Any]:
    return _run(p, p["workers"], 1, w.burn, [p["loops"]] * p["trials"])


def w2(p: dict[str, Any]) -> dict[str, Any]:
    return _run(p, 1, p["workers"], w.nap, [p["seconds"]] * p["trials"])


if __name__ == "__main__":
    main({"W1": w1, "W2": w2})
