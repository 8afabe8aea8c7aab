"""Hydra multirun: the basic launcher (one job after another in this process) for W0, and
the joblib launcher (loky processes) for W1. Hydra keeps a folder of config, overrides and
log per job, as it does by default."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore

from benchmarks import workloads as w
from benchmarks.protocol import main, stopwatch


@dataclass
class BenchConfig:
    a: int = 0
    b: int = 0
    i: int = 0
    loops: int = 0
    task: str = "noop"


ConfigStore.instance().store(name="bench", node=BenchConfig)


@hydra.main(version_base=None, config_name="bench")
def job(cfg: Any) -> dict[str, int]:
    if cfg.task == "burn":
        return w.burn(cfg.i, cfg.loops)
    return w.noop(cfg.a, cfg.b)


def _multirun(overrides: list[str]) -> float:
    # Hydra reads its command line from sys.argv: this is `python app.py -m ...`
    sys.argv = [sys.argv[0], "--multirun", "hydra.sweep.dir=multirun", *overrides]
    with stopwatch() as t:
        job()
    return t["s"]


def _jobs_done() -> int:
    # every job that ran leaves its folder with the overrides it ran with
    from pathlib import Path

    return sum(1 for _ in Path("multirun").glob("*/.hydra/overrides.yaml"))


def w0(p: dict[str, Any]) -> dict[str, Any]:
    wall = _multirun([f"a=range(0,{p['a']})", f"b=range(0,{p['b']})"])
    return {"wall_s": wall, "completed": _jobs_done()}


def w1(p: dict[str, Any]) -> dict[str, Any]:
    wall = _multirun(
        [
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={p['workers']}",
            "task=burn",
            f"loops={p['loops']}",
            f"i=range(0,{p['trials']})",
        ]
    )
    return {"wall_s": wall, "completed": _jobs_done()}


if __name__ == "__main__":
    main({"W0": w0, "W1": w1})
