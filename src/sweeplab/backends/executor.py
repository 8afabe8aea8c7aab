"""Any ``concurrent.futures.Executor`` as a backend: ``exp.run(backend=my_executor)``.

The executor stays the user's: sweeplab submits ``run_batch`` to it and never shuts it
down. Its slots are its ``_max_workers`` when it has one (the standard pools do), else
``workers``, else the number of cores.
"""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor

from sweeplab.backends.base import Backend


class ExecutorBackend(Backend):
    name = "executor"

    def __init__(self, executor: Executor, workers: int | None = None) -> None:
        super().__init__(workers or getattr(executor, "_max_workers", None))
        self._executor = executor
        # a thread pool runs trials in this process, so a memory store works with it
        self.in_process = isinstance(executor, ThreadPoolExecutor)  # type: ignore[misc]

    def start(self) -> Executor:
        return self._executor

    def stop(self, *, cancel: bool) -> None:
        pass
