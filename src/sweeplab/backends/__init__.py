"""Backends, by name. Local ones are imported here; engines load on first use, and a
missing extra says which one to install."""

from __future__ import annotations

import importlib
from typing import Any

from sweeplab.backends.base import Backend, WorkerCrashed, resolve_workers
from sweeplab.errors import BackendError

__all__ = ["BACKENDS", "Backend", "WorkerCrashed", "make_backend", "resolve_workers"]

#: name -> (module, class, extra that provides its engine)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "serial": ("sweeplab.backends.serial", "SerialBackend", None),
    "threads": ("sweeplab.backends.threads", "ThreadsBackend", None),
    "processes": ("sweeplab.backends.processes", "ProcessesBackend", None),
}


def make_backend(name: str | Backend, workers: int | None = None, **options: Any) -> Backend:
    """The backend called ``name``, or ``name`` itself if it is one already."""
    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    module_name, class_name, extra = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(
            f'backend {name!r} needs an extra: pip install "sweeplab[{extra}]"'
        ) from exc
    return getattr(module, class_name)(workers, **options)
