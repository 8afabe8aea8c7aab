"""sweeplab: run a Python function over a parameter space, with every trial kept in a
store, resumable local and distributed execution, and results as DataFrames.

Names load on first use (PEP 562), so a worker process that imports
``sweeplab.execution`` does not pay for the runner, the stores or the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sweeplab._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "Backend": "sweeplab.backends.base",
    "WorkerCrashed": "sweeplab.backends.base",
    "BackendError": "sweeplab.errors",
    "NoStore": "sweeplab.errors",
    "NotAStore": "sweeplab.errors",
    "ResultError": "sweeplab.errors",
    "SchemaVersionError": "sweeplab.errors",
    "SpaceError": "sweeplab.errors",
    "StoreError": "sweeplab.errors",
    "SweeplabError": "sweeplab.errors",
    "TargetError": "sweeplab.errors",
    "UnknownExperiment": "sweeplab.errors",
    "UsageError": "sweeplab.errors",
    "Experiment": "sweeplab.experiments",
    "RunInterrupted": "sweeplab.experiments",
    "experiment": "sweeplab.experiments",
    "Progress": "sweeplab.runner",
    "RunReport": "sweeplab.runner",
    "Space": "sweeplab.space",
    "cases": "sweeplab.space",
    "choice": "sweeplab.space",
    "grid": "sweeplab.space",
    "loguniform": "sweeplab.space",
    "randint": "sweeplab.space",
    "sample": "sweeplab.space",
    "uniform": "sweeplab.space",
    "open_store": "sweeplab.store",
    "overview": "sweeplab.store.overview",
    "Trial": "sweeplab.trial",
    "TrialRecord": "sweeplab.trial",
    "TrialStatus": "sweeplab.trial",
    "work": "sweeplab.worker",
}

__all__ = [
    "Backend",
    "BackendError",
    "Experiment",
    "NoStore",
    "NotAStore",
    "Progress",
    "ResultError",
    "RunInterrupted",
    "RunReport",
    "SchemaVersionError",
    "Space",
    "SpaceError",
    "StoreError",
    "SweeplabError",
    "TargetError",
    "Trial",
    "TrialRecord",
    "TrialStatus",
    "UnknownExperiment",
    "UsageError",
    "WorkerCrashed",
    "__version__",
    "cases",
    "choice",
    "experiment",
    "grid",
    "loguniform",
    "open_store",
    "overview",
    "randint",
    "sample",
    "uniform",
    "work",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sweeplab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from sweeplab.backends.base import Backend, WorkerCrashed
    from sweeplab.errors import (
        BackendError,
        NotAStore,
        ResultError,
        SchemaVersionError,
        SpaceError,
        StoreError,
        SweeplabError,
        TargetError,
        UnknownExperiment,
        UsageError,
    )
    from sweeplab.experiments import Experiment, RunInterrupted, experiment
    from sweeplab.runner import Progress, RunReport
    from sweeplab.space import Space, cases, choice, grid, loguniform, randint, sample, uniform
    from sweeplab.store import open_store
    from sweeplab.store.overview import overview
    from sweeplab.trial import Trial, TrialRecord, TrialStatus
    from sweeplab.worker import work
