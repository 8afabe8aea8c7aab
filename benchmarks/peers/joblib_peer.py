"""joblib: ``Parallel(n_jobs)(delayed(f)(...) for ...)``; keeps nothing once the process ends."""

from __future__ import annotations

from typing import Any

from joblib import Parallel, delayed

from benchmarks import workloads as w
from benchmarks.protocol import main, stopwatch


def w0(p: dict[str, Any]) -> dict[str, Any]:
    # the loky pool starts inside the timed call, as sweeplab's process pool does
    with stopwatch() as t:
        out = Parallel(n_jobs=p["workers"])(
            delayed(w.noop)(a, b) for a in range(p["a"]) for b in range(p["b"])
        )
    return {"wall_s": t["s"], "completed": len(out)}


def w1(p: dict[str, Any]) -> dict[str, Any]:
    with stopwatch() as t:
        out = Parallel(n_jobs=p["workers"])(
            delayed(w.burn)(i, p["loops"]) for i in range(p["trials"])
        )
    return {"wall_s": t["s"], "completed": len(out)}


def w2(p: dict[str, Any]) -> dict[str, Any]:
    with stopwatch() as t:
        out = Parallel(n_jobs=p["workers"], prefer="threads")(
            delayed(w.nap)(i, p["seconds"]) for i in range(p["trials"])
        )
    return {"wall_s": t["s"], "completed": len(out)}


if __name__ == "__main__":
    main({"W0": w0, "W1": w1, "W2": w2})
