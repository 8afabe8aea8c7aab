"""``run_batch`` and ``run_trial``: the one code path every backend runs for a trial.

Whatever the backend (this process, a thread, a local process, a Dask or Ray worker,
a SLURM job), a ``Batch`` is shipped there and ``run_batch`` turns it into outcomes.
Nothing here touches the store's tables: checkpoints and artifacts go through the
``TrialSink`` contract, and outcomes go back to the runner, which records them.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sweeplab.jsonvalues import NotJSONError, result_json
from sweeplab.target import FunctionRef, Signature
from sweeplab.trial import (
    ErrorKind,
    Outcome,
    Trial,
    TrialSink,
    TrialStatus,
    TrialTask,
    TrialTimeout,
)

HOST = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Batch:
    """Trials of one experiment to run in one go, and what they need wherever they run."""

    function: FunctionRef
    tasks: tuple[TrialTask, ...]
    #: the lease that holds the trials; their checkpoints and artifacts are fenced on it
    owner: str
    #: where a trial in another process writes checkpoints and artifacts
    store_url: str | None = field(repr=False)
    timeout_s: float | None = None


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C arrived mid-batch; carries the outcomes finished before it."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__()
        self.outcomes = outcomes


# Stores this process already has open, by URL: in-process backends use the runner's own
# store object (a memory store has no other way in); other processes open one lazily.
_sinks: dict[str, TrialSink] = {}
_sinks_lock = threading.Lock()


def register_sink(url: str, sink: TrialSink) -> None:
    with _sinks_lock:
        _sinks[url] = sink


def forget_open_stores() -> None:
    """In a forked child: the parent's stores hold the parent's connections."""
    _sinks.clear()


class _LazySink:
    """Opens the store on first use, so trials that never checkpoint never connect."""

    def __init__(self, url: str) -> None:
        self._url = url

    def _store(self) -> TrialSink:
        with _sinks_lock:
            sink = _sinks.get(self._url)
            if sink is None:
                from sweeplab.store import open_store

                sink = _sinks[self._url] = open_store(self._url, create=False)
        return sink

    def save_checkpoint(self, trial_id: int, owner: str, data: bytes) -> None:
        self._store().save_checkpoint(trial_id, owner, data)

    def load_checkpoint(self, trial_id: int) -> bytes | None:
        return self._store().load_checkpoint(trial_id)

    def save_artifact(self, trial_id: int, owner: str, name: str, data: bytes) -> None:
        self._store().save_artifact(trial_id, owner, name, data)


def run_batch(batch: Batch, on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every trial of ``batch`` in order; ``on_outcome`` hears each as it finishes."""
    fn = batch.function.load()
    wants_trial = _signature(batch.function, fn).wants_trial
    sink = _LazySink(batch.store_url) if batch.store_url else None
    outcomes: list[Outcome] = []
    try:
        for task in batch.tasks:
            outcome = run_trial(fn, task, wants_trial, sink, batch.owner, batch.timeout_s)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    except KeyboardInterrupt as exc:
        raise BatchInterrupted(outcomes) from exc
    return outcomes


_signatures: dict[str, Signature] = {}


def _signature(ref: FunctionRef, fn: Callable[..., Any]) -> Signature:
    sig = _signatures.get(ref.key)
    if sig is None:
        sig = _signatures[ref.key] = Signature.of(fn)
    return sig


def run_trial(
    fn: Callable[..., Any],
    task: TrialTask,
    wants_trial: bool,
    sink: TrialSink | None,
    owner: str,
    timeout_s: float | None = None,
) -> Outcome:
    """Call the function on one trial and say what happened. Never raises for the trial's sake."""
    started = time.time()
    t0 = time.perf_counter()
    deadline = None if timeout_s is None else started + timeout_s
    trial = Trial(task, sink, owner, deadline) if wants_trial else None
    kwargs = {**task.params, "trial": trial} if wants_trial else task.params
    outcome = Outcome(task.id, TrialStatus.DONE, started_at=started, host=HOST)
    try:
        if timeout_s is None:
            value = fn(**kwargs)
        else:
            with _Timeout(timeout_s):
                value = fn(**kwargs)
        outcome.result_json = _result_json(value)
    except TrialTimeout:
        outcome.status = TrialStatus.FAILED
        outcome.error_kind = ErrorKind.TIMEOUT
        outcome.error = f"timeout: the trial ran past its timeout of {timeout_s:g} s"
        outcome.traceback = traceback.format_exc()
    except NotJSONError as exc:
        outcome.status = TrialStatus.FAILED
        outcome.error_kind = ErrorKind.RESULT
        outcome.error = (
            f"the result cannot be stored: {exc}; return numbers, strings, lists and dicts, "
            "and save other objects with trial.save_artifact"
        )
    except (Exception, SystemExit) as exc:
        outcome.status = TrialStatus.FAILED
        outcome.error_kind = ErrorKind.EXCEPTION
        outcome.error = _one_line(exc)
        outcome.traceback = traceback.format_exc()
    outcome.duration_s = time.perf_counter() - t0
    if trial is not None:
        outcome.metrics = trial.take_metrics()
    outcome.error, outcome.traceback = _storable(outcome.error), _storable(outcome.traceback)
    return outcome


def _storable(text: str | None) -> str | None:
    """Text every store can hold: a NUL byte (``ValueError(data)`` of binary data, say),
    which PostgreSQL's text refuses and the whole batch with it, is written as \\x00."""
    return text.replace("\x00", "\\x00") if text and "\x00" in text else text


def _result_json(value: Any) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        value = {"value": value}
    return result_json(value)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _Timeout:
    """Raise TrialTimeout in the trial's thread once ``timeout_s`` has passed.

    In the main thread a SIGALRM timer does it, which also interrupts sleeps and
    blocking calls. In other threads an asynchronous exception is set on the thread,
    which Python raises at its next bytecode (it cannot stop a call into C).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def __enter__(self) -> None:
        self._use_alarm = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "setitimer"
        )
        if self._use_alarm:
            self._old = signal.signal(signal.SIGALRM, _raise_timeout)
            signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
            return
        self._lock = threading.Lock()
        self._finished = False
        self._fired = False
        self._thread_id = threading.get_ident()
        self._timer = threading.Timer(self.timeout_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if not self._finished:
                self._fired = True
                _set_async_exc(self._thread_id, TrialTimeout)

    def __exit__(self, *exc: object) -> None:
        if self._use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old)
            return
        self._timer.cancel()
        with self._lock:
            self._finished = True
            if self._fired:
                _set_async_exc(self._thread_id, None)  # withdraw it if not yet raised


def _raise_timeout(signum: int, frame: Any) -> None:
    raise TrialTimeout("the trial ran past its timeout")


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


def interrupt_thread(thread_id: int) -> None:
    """Raise KeyboardInterrupt in another thread at its next bytecode."""
    _set_async_exc(thread_id, KeyboardInterrupt)
