"""The store contract: the single source of truth for experiments and their trials.

Ownership of RUNNING trials
    A trial moves PENDING -> RUNNING only through ``claim``, which gives it to one
    ``Lease`` (a runner or worker process) until ``lease_expires_at``. Only that lease
    may ``record`` its outcome, ``release`` it or write its checkpoints and artifacts;
    every such write is fenced on ``lease_owner``, so a late outcome from a holder whose
    lease was taken over is dropped and exactly one outcome is ever recorded.
    The holder keeps its leases alive with ``heartbeat``. ``reclaim`` returns to PENDING
    the trials whose lease expired or whose holder is a process known to be dead on
    this host, and fails those that have lost their holder too often.

Attempts
    ``claim`` counts an attempt; ``release`` (a trial handed back unstarted or
    interrupted) takes it back. A trial whose holder died keeps the attempt, so a
    trial that keeps killing its workers is failed after ``max_attempts + LOST_ALLOWANCE``.

Thread and process safety
    A store object may be used from several threads. Any number of processes, on any
    number of hosts for a server database, may open the same store at once: ``add_trials``
    and ``claim`` are atomic and safe under that concurrency.

Values
    The store hands out frozen records (``TrialRecord``, ``ExperimentRecord``, ...),
    never rows, cursors or sessions. Timestamps are seconds since the epoch, taken from
    the database's clock where there is one, so hosts with skewed clocks agree on leases.
"""

from __future__ import annotations

import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from sweeplab.trial import Outcome, TrialColumns, TrialRecord, TrialStatus, TrialTask

#: extra lost leases a trial may survive beyond its ``max_attempts`` before it is failed
LOST_ALLOWANCE = 2


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """One experiment: a name and how to find its function."""

    id: int
    name: str
    #: "package.module:function" or "/abs/path/file.py:function"; None when stored by value
    target: str | None
    #: cloudpickle of the function, for functions that cannot be imported by name
    function_pickle: bytes | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds claimed trials: one runner or worker process."""

    owner: str
    host: str
    pid: int

    @classmethod
    def for_this_process(cls) -> Lease:
        host = socket.gethostname()
        pid = os.getpid()
        # the owner column holds 128 characters: a long host name is cut, the uuid keeps it unique
        return cls(owner=f"{host[:96]}:{pid}:{uuid.uuid4().hex[:12]}", host=host, pid=pid)


@dataclass(frozen=True, slots=True)
class ClaimedTrial:
    """A trial just claimed, with the experiment it belongs to."""

    experiment_id: int
    task: TrialTask


@dataclass(frozen=True, slots=True)
class MetricRecord:
    trial_id: int
    attempt: int
    step: int | None
    name: str
    value: float
    logged_at: float


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A runner or worker that registered itself; alive while it heartbeats."""

    owner: str
    host: str
    pid: int
    slots: int
    backend: str
    started_at: float
    heartbeat_at: float


class NewTrial(NamedTuple):
    """A trial to add: one repetition of one canonical point (a tuple: a million are
    made for a million points, and a tuple is made twice as fast as a frozen dataclass)."""

    point_key: str
    params_json: str
    repetition: int
    seed: int


class BaseStore(ABC):
    """Experiments, trials, metrics, artifacts, checkpoints and workers. See the module doc."""

    #: whether another process can open this store from ``url`` (a memory store cannot)
    shared_across_processes: ClassVar[bool] = True

    #: the URL with any password hidden: safe to print and log
    display_url: str

    # -- experiments ---------------------------------------------------------------
    @abstractmethod
    def ensure_experiment(
        self, name: str, target: str | None, function_pickle: bytes | None
    ) -> ExperimentRecord:
        """Create the experiment, or update how its function is found; return it."""

    @abstractmethod
    def experiment(self, name: str) -> ExperimentRecord:
        """The experiment called ``name``; raises UnknownExperiment naming those there are."""

    @abstractmethod
    def experiments(self) -> list[ExperimentRecord]: ...

    # -- trials --------------------------------------------------------------------
    @abstractmethod
    def add_trials(self, experiment_id: int, trials: Iterable[NewTrial]) -> int:
        """Insert the trials that are not there yet, all or none; return how many were new."""

    @abstractmethod
    def claim(
        self,
        lease: Lease,
        limit: int,
        lease_s: float,
        max_attempts: int,
        experiment_ids: Sequence[int] | None = None,
    ) -> list[ClaimedTrial]:
        """Atomically move up to ``limit`` PENDING trials, to RUNNING under ``lease``."""

    @abstractmethod
    def record(self, lease: Lease, outcomes: Sequence[Outcome]) -> int:
        """Record outcomes of trials this lease holds, in one transaction; return how many held.

        An outcome whose status is PENDING hands the trial back for a retry, keeping
        its error. Outcomes of trials the lease no longer holds are dropped.
        """

    @abstractmethod
    def release(self, lease: Lease, trial_ids: Sequence[int] | None = None) -> int:
        """Hand back held trials (all if ``trial_ids`` is None) to PENDING; refund attempts."""

    @abstractmethod
    def heartbeat(self, lease: Lease, lease_s: float) -> int:
        """Extend every lease ``lease`` holds by ``lease_s`` from now; return how many."""

    @abstractmethod
    def reclaim(self, host: str, is_alive: Callable[[int], bool]) -> int:
        """Free trials whose lease expired or whose holder on ``host`` is dead; return how many."""

    @abstractmethod
    def counts(self, experiment_id: int) -> dict[TrialStatus, int]: ...

    def unfinished(self, experiment_id: int) -> bool:
        """Whether a trial of the experiment is pending or running: what a runner that has
        nothing to claim asks at every look. A server store answers from its index rather
        than counting every trial, which a hundred idle workers would do at the tail of a
        million."""
        counts = self.counts(experiment_id)
        return counts[TrialStatus.PENDING] + counts[TrialStatus.RUNNING] > 0

    @abstractmethod
    def recent_finishes(self, experiment_id: int, since: float, limit: int) -> list[float]:
        """When the latest ``limit`` trials that finished (done or failed) after ``since``
        (epoch seconds) finished, the newest first."""

    @abstractmethod
    def trials(
        self, experiment_id: int, statuses: Sequence[TrialStatus] | None = None
    ) -> list[TrialRecord]: ...

    def trial_columns(
        self, experiment_id: int, statuses: Sequence[TrialStatus] | None = None
    ) -> TrialColumns:
        """``trials()`` column by column; a store may read them faster than record by record."""
        return TrialColumns.of(self.trials(experiment_id, statuses))

    @abstractmethod
    def trial(self, experiment_id: int, trial_id: int) -> TrialRecord | None: ...

    @abstractmethod
    def reset(self, experiment_id: int, statuses: Sequence[TrialStatus]) -> int:
        """Send trials in ``statuses`` back to PENDING with no attempts, result or error."""

    @abstractmethod
    def metrics(self, experiment_id: int) -> list[MetricRecord]: ...

    # -- what a running trial writes (the TrialSink protocol) -------------------------
    @abstractmethod
    def save_checkpoint(self, trial_id: int, owner: str, data: bytes) -> None:
        """Replace the trial's checkpoint, if ``owner`` still holds it; committed on return."""

    @abstractmethod
    def load_checkpoint(self, trial_id: int) -> bytes | None: ...

    @abstractmethod
    def save_artifact(self, trial_id: int, owner: str, name: str, data: bytes) -> None: ...

    @abstractmethod
    def artifacts(self, trial_id: int) -> dict[str, bytes]: ...

    # -- workers -------------------------------------------------------------------
    @abstractmethod
    def register_worker(self, lease: Lease, slots: int, backend: str) -> None: ...

    @abstractmethod
    def unregister_worker(self, lease: Lease) -> None: ...

    @abstractmethod
    def workers(self) -> list[WorkerRecord]:
        """Registered workers, most recent heartbeat first."""

    def close(self) -> None:
        """Release connections; the store object is not used afterwards."""

    def __enter__(self) -> BaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
