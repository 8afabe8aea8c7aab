"""Backends, by name. Local ones are imported here; engines load on first use, and a
missing extra says which one to install."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sweeplab.errors import BackendError

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from sweeplab.backends.base import Backend, WorkerCrashed, resolve_workers

__all__ = ["BACKENDS", "Backend", "WorkerCrashed", "make_backend", "resolve_workers"]

#: name -> (module, class, extra that provides its engine)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "serial": ("sweeplab.backends.serial", "SerialBackend", None),
    "threads": ("sweeplab.backends.threads", "ThreadsBackend", None),
    "processes": ("sweeplab.backends.processes", "ProcessesBackend", None),
    "dask": ("sweeplab.backends.dask", "DaskBackend", "dask"),
    "ray": ("sweeplab.backends.ray", "RayBackend", "ray"),
    "mpi": ("sweeplab.backends.mpi", "MPIBackend", "mpi"),
    "slurm": ("sweeplab.backends.slurm", "SlurmBackend", "slurm"),
}


def __getattr__(name: str) -> Any:
    # the contract loads on first use: the command line lists BACKENDS without it
    if name in ("Backend", "WorkerCrashed", "resolve_workers"):
        from sweeplab.backends import base

        return getattr(base, name)
    raise AttributeError(f"module 'sweeplab.backends' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def make_backend(
    name: str | Backend | Executor, workers: int | None = None, **options: Any
) -> Backend:
    """The backend called ``name``; a Backend or any concurrent.futures.Executor as it is."""
    from concurrent.futures import Executor

    from sweeplab.backends.base import Backend

    if isinstance(name, Backend):
        return name
    if isinstance(name, Executor):
        from sweeplab.backends.executor import ExecutorBackend

        return ExecutorBackend(name, workers)
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    module_name, class_name, extra = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise BackendError(
            f'backend {name!r} needs an extra: pip install "sweeplab[{extra}]"'
        ) from exc
    try:
        return getattr(module, class_name)(workers, **options)
    except TypeError as exc:
        if options and "argument" in str(exc):
            raise BackendError(
                f"backend {name!r} does not take {', '.join(sorted(options))}: {exc}"
            ) from exc
        raise
