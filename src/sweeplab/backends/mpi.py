"""The MPI backend: trials run on the ranks of an MPI job (Experimenter.jl's MPI mode).

Every rank runs the same command or script:

    mpiexec -n 4 sweeplab run study.py:simulate n=1,2,3 --backend mpi
    mpiexec -n 4 python study.py          # which calls exp.run(backend="mpi")

Rank 0 claims, dispatches and records; the other ranks run batches, through
``mpi4py.futures.MPICommExecutor``. On those ranks ``run`` only serves, and returns
when rank 0 is done.
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

from sweeplab.backends.base import Backend
from sweeplab.errors import BackendError

try:
    from mpi4py import MPI
    from mpi4py.futures import MPICommExecutor
except ImportError as exc:  # the registry turns this into "pip install sweeplab[mpi]"
    raise ImportError("mpi4py is not installed") from exc

ROOT = 0


class MPIBackend(Backend):
    name = "mpi"

    def __init__(self, workers: int | None = None, *, comm: Any = None) -> None:
        self._comm = comm or MPI.COMM_WORLD
        size = self._comm.Get_size()
        if size < 2:
            raise BackendError(
                "the mpi backend needs at least 2 ranks (1 to drive, the rest to run trials): "
                "start it with mpiexec -n N, N >= 2"
            )
        super().__init__(size - 1)
        self._context: MPICommExecutor | None = None

    @property
    def serves_only(self) -> bool:
        """True on the ranks that only run trials for rank 0."""
        return self._comm.Get_rank() != ROOT

    def serve(self) -> None:
        """On a worker rank: run batches for rank 0 until it is done."""
        with MPICommExecutor(self._comm, root=ROOT):
            pass

    def start(self) -> cf.Executor:
        self._context = MPICommExecutor(self._comm, root=ROOT)
        executor = self._context.__enter__()
        if executor is None:
            raise BackendError("only rank 0 drives an MPI run; the other ranks serve")
        return executor

    def stop(self, *, cancel: bool) -> None:
        if self._context is not None:
            executor = self._context.executor if hasattr(self._context, "executor") else None
            if cancel and executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
            self._context.__exit__(None, None, None)
            self._context = None
