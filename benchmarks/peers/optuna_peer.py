"""Optuna with SQLite storage: a grid sampler over the W0 grid, one trial per point, each
recording its value; every trial is created, its parameters stored and its value
committed through the storage."""

from __future__ import annotations

from typing import Any

import optuna

from benchmarks import workloads as w
from benchmarks.protocol import main, stopwatch


def w0(p: dict[str, Any]) -> dict[str, Any]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no log line per trial
    space = {"a": list(range(p["a"])), "b": list(range(p["b"]))}
    study = optuna.create_study(
        study_name="w0",
        storage="sqlite:///optuna.db",
        sampler=optuna.samplers.GridSampler(space, seed=0),
    )

    def objective(trial: optuna.Trial) -> float:
        a = trial.suggest_categorical("a", space["a"])
        b = trial.suggest_categorical("b", space["b"])
        return w.noop(a, b)["y"]

    with stopwatch() as t:
        study.optimize(objective, n_trials=p["a"] * p["b"])
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return {"wall_s": t["s"], "completed": len(done)}


if __name__ == "__main__":
    main({"W0": w0})
