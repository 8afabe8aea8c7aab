"""The backend contract: something that runs ``execution.run_batch`` somewhere.

A backend is a ``concurrent.futures.Executor`` factory plus the facts the runner needs
about it. The runner submits ``run_batch(batch)`` and receives a future of the batch's
outcomes; it does the claiming, batching, retries, leases and recording itself, so a
new engine (Dask, Ray, submitit, mpi4py.futures) only has to provide an executor.

A future may fail with ``WorkerCrashed`` when the process running the batch died: it
carries the outcomes that finished before, and which trial was running, when the
backend knows. Any other exception from a future means the engine lost the batch
without saying which trial was at fault; the runner then runs its trials one by one.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import Executor
from typing import ClassVar

from sweeplab.errors import BackendError
from sweeplab.trial import Outcome


class WorkerCrashed(Exception):
    """The process running a batch died mid-batch."""

    def __init__(
        self,
        cause: str,
        outcomes: list[Outcome] | None = None,
        running_index: int | None = None,
        *,
        timed_out: bool = False,
        running_since: float | None = None,
    ) -> None:
        super().__init__(cause)
        self.cause = cause
        #: outcomes of the trials that finished before the crash, in order
        self.outcomes = outcomes or []
        #: index in the batch of the trial that was running, if known (None: nobody to blame)
        self.running_index = running_index
        #: the backend killed the process because its trial overran its timeout
        self.timed_out = timed_out
        #: when the blamed trial started (epoch seconds), if the backend knows
        self.running_since = running_since


class Backend(ABC):
    """Runs batches of trials on ``slots`` parallel slots."""

    name: ClassVar[str]
    #: trials run in this process and can use an in-memory store
    in_process: ClassVar[bool] = False
    #: a trial that kills its process (os._exit, segfault, OOM) does not stop the run
    isolates_crashes: ClassVar[bool] = False
    #: a trial stuck past its timeout, even inside C code, is stopped by force
    kills_on_timeout: ClassVar[bool] = False

    def __init__(self, workers: int | None = None) -> None:
        self.slots = resolve_workers(workers)

    @abstractmethod
    def start(self) -> Executor:
        """Start the executor that batches are submitted to."""

    @abstractmethod
    def stop(self, *, cancel: bool) -> None:
        """Shut the executor down; with ``cancel``, stop running trials as fast as possible.

        On cancel every future still pending must be resolved (with ``WorkerCrashed``
        carrying the outcomes it has), so the runner can record them and hand back the rest.
        """


def resolve_workers(workers: int | None) -> int:
    """None: every core; -1: every core; -2: all but one (joblib's rule)."""
    cores = os.cpu_count() or 1
    if workers is None:
        return cores
    workers = int(workers)
    if workers == 0:
        raise BackendError("workers=0 runs nothing: give a positive count, or -1 for every core")
    if workers < 0:
        return max(1, cores + 1 + workers)
    return workers
