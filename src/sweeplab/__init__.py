"""sweeplab: run a Python function over a parameter space, with every trial kept in a
store, resumable local and distributed execution, and results as DataFrames."""

from sweeplab._version import __version__
from sweeplab.backends import Backend, WorkerCrashed
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
from sweeplab.experiment import Experiment, RunInterrupted, experiment
from sweeplab.runner import Progress, RunReport
from sweeplab.space import Space, cases, choice, grid, loguniform, randint, sample, uniform
from sweeplab.store import open_store
from sweeplab.trial import Trial, TrialRecord, TrialStatus
from sweeplab.worker import work

__all__ = [
    "Backend",
    "BackendError",
    "Experiment",
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
    "randint",
    "sample",
    "uniform",
    "work",
]
