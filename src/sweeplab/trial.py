"""The trial model: its status, the frozen records the store hands out, the values that
travel between the runner and the processes that execute trials, and the ``Trial``
context a user's function receives.
"""

from __future__ import annotations

import enum
import operator
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import cloudpickle


class TrialStatus(str, enum.Enum):
    """Where a trial stands. Only the runner that holds a trial's lease moves it on."""

    #: waiting to be claimed; a new trial, a retried one, or one handed back
    PENDING = "pending"
    #: claimed under a lease by a runner or worker, which must heartbeat it
    RUNNING = "running"
    #: finished; its result is recorded and it never runs again
    DONE = "done"
    #: raised, timed out, crashed its process or lost its worker too often
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class ErrorKind(str, enum.Enum):
    """Why a trial failed."""

    #: the function raised
    EXCEPTION = "exception"
    #: the trial ran past its timeout and was stopped
    TIMEOUT = "timeout"
    #: the process running the trial died (os._exit, a signal, out of memory)
    CRASH = "crash"
    #: the function returned something that cannot be stored
    RESULT = "result"
    #: the worker holding the trial stopped heartbeating too many times
    LOST = "lost"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One trial as the store holds it."""

    id: int
    experiment: str
    params: dict[str, Any]
    repetition: int
    seed: int
    status: TrialStatus
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    error_kind: str | None
    traceback: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    host: str | None
    lease_owner: str | None
    lease_expires_at: float | None


@dataclass(frozen=True, slots=True)
class TrialColumns:
    """Trials of one experiment column by column, in id order: the shape ``results()``
    builds its DataFrame from, read without a record per trial."""

    id: tuple[int, ...]
    params: tuple[dict[str, Any], ...]
    repetition: tuple[int, ...]
    seed: tuple[int, ...]
    status: tuple[str, ...]
    attempts: tuple[int, ...]
    result: tuple[dict[str, Any] | None, ...]
    error: tuple[str | None, ...]
    error_kind: tuple[str | None, ...]
    started_at: tuple[float | None, ...]
    finished_at: tuple[float | None, ...]
    duration_s: tuple[float | None, ...]
    host: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.id)

    def where_status(self, status: TrialStatus) -> TrialColumns:
        """The trials in ``status`` only."""
        keep = [i for i, s in enumerate(self.status) if s == status.value]
        return TrialColumns(*(tuple(getattr(self, name)[i] for i in keep) for name in _FIELDS))

    @classmethod
    def of(cls, records: Sequence[TrialRecord]) -> TrialColumns:
        if not records:
            return cls(*([()] * len(_FIELDS)))
        columns = {n: tuple(getattr(r, n) for r in records) for n in _FIELDS}
        columns["status"] = tuple(str(s) for s in columns["status"])
        return cls(**columns)


_FIELDS = tuple(f.name for f in fields(TrialColumns))


@dataclass(frozen=True, slots=True)
class TrialTask:
    """A claimed trial as it travels to the process that runs it."""

    id: int
    params: dict[str, Any]
    repetition: int
    seed: int
    #: 1 for the first run, 2 for the first retry, ...
    attempt: int

    def __reduce__(self) -> tuple[Any, ...]:
        # by its values: pickling a slotted dataclass looks its fields up again for every
        # object, which cost a worker more than claiming the trials
        return (TrialTask, _task_values(self))


@dataclass(slots=True)
class Outcome:
    """What happened when a trial ran; the runner records it under its lease."""

    trial_id: int
    status: TrialStatus
    result_json: str | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    traceback: str | None = None
    started_at: float = 0.0
    duration_s: float = 0.0
    host: str = ""
    #: (step, name, value, logged_at) rows logged with ``trial.log``
    metrics: list[tuple[int | None, str, float, float]] = field(default_factory=list)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Outcome, _outcome_values(self))  # as TrialTask's


_task_values = operator.attrgetter(*(f.name for f in fields(TrialTask)))
_outcome_values = operator.attrgetter(*(f.name for f in fields(Outcome)))


class TrialTimeout(BaseException):
    """Raised inside a trial that ran past its timeout.

    A BaseException, like KeyboardInterrupt, so that a user's ``except Exception``
    does not swallow it and keep the trial running.
    """


class TrialSink(Protocol):
    """Where a running trial's checkpoints and artifacts go (the store, in practice)."""

    def save_checkpoint(self, trial_id: int, owner: str, data: bytes) -> None: ...

    def load_checkpoint(self, trial_id: int) -> bytes | None: ...

    def save_artifact(self, trial_id: int, owner: str, name: str, data: bytes) -> None: ...


class Trial:
    """The running trial, passed to a function that has a ``trial`` parameter.

    ``trial.params``, ``trial.id``, ``trial.repetition``, ``trial.seed`` and
    ``trial.attempt`` describe it; ``log``, ``save_artifact``, ``checkpoint`` and
    ``restore`` record what it does.
    """

    __slots__ = (
        "_deadline",
        "_metrics",
        "_owner",
        "_sink",
        "attempt",
        "id",
        "params",
        "repetition",
        "seed",
    )

    def __init__(
        self,
        task: TrialTask,
        sink: TrialSink | None = None,
        owner: str = "",
        deadline: float | None = None,
    ) -> None:
        self.id = task.id
        self.params = task.params
        self.repetition = task.repetition
        self.seed = task.seed
        self.attempt = task.attempt
        self._sink = sink
        self._owner = owner
        self._deadline = deadline
        self._metrics: list[tuple[int | None, str, float, float]] = []

    def log(self, step: int | None = None, **metrics: float) -> None:
        """Record numeric metrics, optionally at a step: ``trial.log(step=3, loss=0.1)``."""
        now = time.time()
        if self._deadline is not None and now > self._deadline:
            raise TrialTimeout(f"trial {self.id} ran past its timeout")
        step = None if step is None else int(step)
        for name, value in metrics.items():
            try:
                if isinstance(value, (str, bytes)):
                    raise TypeError
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"trial.log({name}={value!r}): metrics must be numbers; "
                    "return other values in the result instead"
                ) from None
            self._metrics.append((step, name, number, now))

    def checkpoint(self, state: Any) -> None:
        """Save ``state`` so that a later run of this trial can ``restore`` it.

        Durable when this returns: it is committed to the store.
        """
        self._require_sink("checkpoint").save_checkpoint(
            self.id, self._owner, cloudpickle.dumps(state)
        )

    def restore(self, default: Any = None) -> Any:
        """The state last passed to ``checkpoint`` by any attempt of this trial, or ``default``."""
        data = self._require_sink("restore").load_checkpoint(self.id)
        return default if data is None else pickle.loads(data)

    def save_artifact(self, name: str, data_or_path: bytes | str | os.PathLike[str]) -> None:
        """Store a file with the trial: bytes, text, or the path of an existing file."""
        if isinstance(data_or_path, bytes):
            data = data_or_path
        elif isinstance(data_or_path, os.PathLike) or (
            isinstance(data_or_path, str) and os.path.isfile(data_or_path)
        ):
            with open(data_or_path, "rb") as f:
                data = f.read()
        elif isinstance(data_or_path, str):
            data = data_or_path.encode()
        else:
            raise TypeError(
                f"save_artifact({name!r}, ...): give bytes, text or a file path, "
                f"not a {type(data_or_path).__name__}"
            )
        self._require_sink("save_artifact").save_artifact(self.id, self._owner, name, data)

    def take_metrics(self) -> list[tuple[int | None, str, float, float]]:
        """Hand over the metrics logged so far (used when the outcome is built)."""
        metrics, self._metrics = self._metrics, []
        return metrics

    def _require_sink(self, what: str) -> TrialSink:
        if self._sink is None:
            raise RuntimeError(
                f"trial.{what}() needs a store; this trial was called directly, not run by sweeplab"
            )
        return self._sink

    def __repr__(self) -> str:
        return f"<Trial {self.id} rep={self.repetition} seed={self.seed} params={self.params}>"
