"""The threads backend: trials run on a pool of threads in this process.

For trials that wait (I/O, subprocesses, GPU calls that release the GIL). A timeout
raises in the trial's thread at its next Python bytecode; a call stuck inside C
cannot be stopped. Ctrl-C is raised the same way in every busy thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from sweeplab.backends.base import Backend
from sweeplab.execution import interrupt_thread


class _TrackingPool(ThreadPoolExecutor):
    """A thread pool that knows which of its threads are running a call."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="sweeplab-trial")
        self.busy: set[int] = set()
        self._busy_lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(self._tracked, fn, *args, **kwargs)

    def _tracked(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        ident = threading.get_ident()
        with self._busy_lock:
            self.busy.add(ident)
        try:
            return fn(*args, **kwargs)
        finally:
            with self._busy_lock:
                self.busy.discard(ident)

    def interrupt_all(self) -> None:
        with self._busy_lock:
            for ident in self.busy:
                interrupt_thread(ident)


class ThreadsBackend(Backend):
    name = "threads"
    in_process = True

    def start(self) -> Executor:
        self._pool = _TrackingPool(self.slots)
        return self._pool

    def stop(self, *, cancel: bool) -> None:
        if cancel:
            self._pool.interrupt_all()
        self._pool.shutdown(wait=True, cancel_futures=cancel)
