"""The serial backend: trials run one after another in this process, on this thread.

What users debug with: a breakpoint in the function stops right there, and a
traceback points into their code. A trial that kills the process kills the run.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from sweeplab.backends.base import Backend


class InlineExecutor(Executor):
    """Runs each submitted call at once, in the caller's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except KeyboardInterrupt:
            raise  # Ctrl-C belongs to the runner, not to the future
        except BaseException as exc:
            future.set_exception(exc)
        return future


class SerialBackend(Backend):
    name = "serial"
    in_process = True

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(1)

    def start(self) -> Executor:
        return InlineExecutor()

    def stop(self, *, cancel: bool) -> None:
        pass
