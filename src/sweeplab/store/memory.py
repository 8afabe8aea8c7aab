"""A store that lives in this process: for tests, notebooks and quick experiments.

It keeps the whole contract (leases, fencing, attempts) with one lock, so the serial
and threads backends behave on it exactly as on SQLite. Other processes cannot see it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from sweeplab.errors import LeaseLost, UnknownExperiment
from sweeplab.jsonvalues import loads
from sweeplab.store.base import (
    LOST_ALLOWANCE,
    BaseStore,
    ClaimedTrial,
    ExperimentRecord,
    Lease,
    MetricRecord,
    NewTrial,
    WorkerRecord,
)
from sweeplab.trial import ErrorKind, Outcome, TrialRecord, TrialStatus, TrialTask


@dataclasses.dataclass
class _Row:
    id: int
    experiment_id: int
    params_json: str
    repetition: int
    seed: int
    created_at: float
    status: TrialStatus = TrialStatus.PENDING
    attempts: int = 0
    max_attempts: int = 1
    lease_owner: str | None = None
    lease_host: str | None = None
    lease_pid: int | None = None
    lease_expires_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    host: str | None = None
    result_json: str | None = None
    error: str | None = None
    error_kind: str | None = None
    traceback: str | None = None

    def drop_lease(self) -> None:
        self.lease_owner = self.lease_host = self.lease_pid = self.lease_expires_at = None


class MemoryStore(BaseStore):
    shared_across_processes = False
    display_url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._experiments: dict[str, ExperimentRecord] = {}
        self._rows: dict[int, _Row] = {}
        self._keys: set[tuple[int, str, int]] = set()
        self._metrics: list[MetricRecord] = []
        self._checkpoints: dict[int, bytes] = {}
        self._artifacts: dict[int, dict[str, bytes]] = {}
        self._workers: dict[str, WorkerRecord] = {}

    # -- experiments ---------------------------------------------------------------
    def ensure_experiment(
        self, name: str, target: str | None, function_pickle: bytes | None
    ) -> ExperimentRecord:
        with self._lock:
            old = self._experiments.get(name)
            record = ExperimentRecord(
                old.id if old else len(self._experiments) + 1,
                name,
                target,
                function_pickle,
                old.created_at if old else time.time(),
            )
            self._experiments[name] = record
            return record

    def experiment(self, name: str) -> ExperimentRecord:
        with self._lock:
            if name not in self._experiments:
                names = ", ".join(map(repr, self._experiments)) or "none"
                raise UnknownExperiment(
                    f"store memory:// has no experiment {name!r}: it has {names}"
                )
            return self._experiments[name]

    def experiments(self) -> list[ExperimentRecord]:
        with self._lock:
            return sorted(self._experiments.values(), key=lambda e: e.id)

    def _name(self, experiment_id: int) -> str:
        return next(e.name for e in self._experiments.values() if e.id == experiment_id)

    # -- trials --------------------------------------------------------------------
    def add_trials(self, experiment_id: int, trials: Iterable[NewTrial]) -> int:
        added = 0
        trials = list(trials)  # all or none: a failing iterator adds nothing
        with self._lock:
            for t in trials:
                key = (experiment_id, t.point_key, t.repetition)
                if key in self._keys:
                    continue
                self._keys.add(key)
                row_id = len(self._rows) + 1
                self._rows[row_id] = _Row(
                    row_id, experiment_id, t.params_json, t.repetition, t.seed, time.time()
                )
                added += 1
        return added

    def claim(
        self,
        lease: Lease,
        limit: int,
        lease_s: float,
        max_attempts: int,
        experiment_ids: Sequence[int] | None = None,
    ) -> list[ClaimedTrial]:
        claimed = []
        with self._lock:
            for row in self._rows.values():
                if len(claimed) >= limit:
                    break
                if row.status is not TrialStatus.PENDING:
                    continue
                if experiment_ids is not None and row.experiment_id not in experiment_ids:
                    continue
                row.status = TrialStatus.RUNNING
                row.attempts += 1
                row.max_attempts = max_attempts
                row.lease_owner, row.lease_host, row.lease_pid = lease.owner, lease.host, lease.pid
                row.lease_expires_at = time.time() + lease_s
                task = TrialTask(
                    row.id, loads(row.params_json), row.repetition, row.seed, row.attempts
                )
                claimed.append(ClaimedTrial(row.experiment_id, task))
        return claimed

    def _held(self, lease_owner: str, trial_id: int) -> _Row | None:
        row = self._rows.get(trial_id)
        if row is None or row.status is not TrialStatus.RUNNING or row.lease_owner != lease_owner:
            return None
        return row

    def record(self, lease: Lease, outcomes: Sequence[Outcome]) -> int:
        recorded = 0
        with self._lock:
            for o in outcomes:
                row = self._held(lease.owner, o.trial_id)
                if row is None:
                    continue
                row.status = TrialStatus(o.status)
                row.result_json, row.error, row.traceback = o.result_json, o.error, o.traceback
                row.error_kind = None if o.error_kind is None else str(o.error_kind)
                row.started_at = o.started_at or None
                row.duration_s = o.duration_s
                row.finished_at = (o.started_at + o.duration_s) if o.started_at else None
                row.host = o.host or None
                row.drop_lease()
                self._metrics.extend(
                    MetricRecord(o.trial_id, row.attempts, step, name, value, at)
                    for step, name, value, at in o.metrics
                )
                recorded += 1
        return recorded

    def release(self, lease: Lease, trial_ids: Sequence[int] | None = None) -> int:
        released = 0
        with self._lock:
            ids = self._rows.keys() if trial_ids is None else trial_ids
            for trial_id in ids:
                row = self._held(lease.owner, trial_id)
                if row is not None:
                    row.status = TrialStatus.PENDING
                    row.attempts -= 1
                    row.drop_lease()
                    released += 1
        return released

    def heartbeat(self, lease: Lease, lease_s: float) -> int:
        renewed = 0
        with self._lock:
            if lease.owner in self._workers:
                self._workers[lease.owner] = dataclasses.replace(
                    self._workers[lease.owner], heartbeat_at=time.time()
                )
            for row in self._rows.values():
                if row.status is TrialStatus.RUNNING and row.lease_owner == lease.owner:
                    row.lease_expires_at = time.time() + lease_s
                    renewed += 1
        return renewed

    def reclaim(self, host: str, is_alive: Callable[[int], bool]) -> int:
        freed = 0
        now = time.time()
        with self._lock:
            for row in self._rows.values():
                if row.status is not TrialStatus.RUNNING:
                    continue
                expired = row.lease_expires_at is not None and row.lease_expires_at < now
                dead = (
                    row.lease_host == host
                    and row.lease_pid is not None
                    and not is_alive(row.lease_pid)
                )
                if not (expired or dead):
                    continue
                if row.attempts >= row.max_attempts + LOST_ALLOWANCE:
                    row.status = TrialStatus.FAILED
                    row.error_kind = str(ErrorKind.LOST)
                    row.error = "the process running this trial died on each of its attempts"
                    row.finished_at = now
                else:
                    row.status = TrialStatus.PENDING
                row.drop_lease()
                freed += 1
        return freed

    def counts(self, experiment_id: int) -> dict[TrialStatus, int]:
        counts = dict.fromkeys(TrialStatus, 0)
        with self._lock:
            for row in self._rows.values():
                if row.experiment_id == experiment_id:
                    counts[row.status] += 1
        return counts

    def recent_finishes(self, experiment_id: int, since: float, limit: int) -> list[float]:
        with self._lock:
            finishes = [
                row.finished_at
                for row in self._rows.values()
                if row.experiment_id == experiment_id
                and row.status in (TrialStatus.DONE, TrialStatus.FAILED)
                and row.finished_at is not None
                and row.finished_at > since
            ]
        return sorted(finishes, reverse=True)[:limit]

    def trials(
        self, experiment_id: int, statuses: Sequence[TrialStatus] | None = None
    ) -> list[TrialRecord]:
        with self._lock:
            name = self._name(experiment_id)
            return [
                self._record(name, row)
                for row in self._rows.values()
                if row.experiment_id == experiment_id
                and (not statuses or row.status in [TrialStatus(s) for s in statuses])
            ]

    def trial(self, experiment_id: int, trial_id: int) -> TrialRecord | None:
        with self._lock:
            row = self._rows.get(trial_id)
            if row is None or row.experiment_id != experiment_id:
                return None
            return self._record(self._name(experiment_id), row)

    @staticmethod
    def _record(name: str, row: _Row) -> TrialRecord:
        return TrialRecord(
            id=row.id,
            experiment=name,
            params=loads(row.params_json),
            repetition=row.repetition,
            seed=row.seed,
            status=row.status,
            attempts=row.attempts,
            result=None if row.result_json is None else loads(row.result_json),
            error=row.error,
            error_kind=row.error_kind,
            traceback=row.traceback,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_s=row.duration_s,
            host=row.host,
            lease_owner=row.lease_owner,
            lease_expires_at=row.lease_expires_at,
        )

    def reset(self, experiment_id: int, statuses: Sequence[TrialStatus]) -> int:
        wanted = {TrialStatus(s) for s in statuses}
        reset = 0
        with self._lock:
            for row in self._rows.values():
                if row.experiment_id == experiment_id and row.status in wanted:
                    fresh = _Row(
                        row.id,
                        row.experiment_id,
                        row.params_json,
                        row.repetition,
                        row.seed,
                        row.created_at,
                    )
                    self._rows[row.id] = fresh
                    reset += 1
        return reset

    def metrics(self, experiment_id: int) -> list[MetricRecord]:
        with self._lock:
            mine = [
                m for m in self._metrics if self._rows[m.trial_id].experiment_id == experiment_id
            ]
        # by trial, then in the order they were logged (a stable sort), as the SQL store
        return sorted(mine, key=lambda m: m.trial_id)

    # -- trial sink ----------------------------------------------------------------
    def save_checkpoint(self, trial_id: int, owner: str, data: bytes) -> None:
        with self._lock:
            self._require_held(trial_id, owner)
            self._checkpoints[trial_id] = data

    def load_checkpoint(self, trial_id: int) -> bytes | None:
        with self._lock:
            return self._checkpoints.get(trial_id)

    def save_artifact(self, trial_id: int, owner: str, name: str, data: bytes) -> None:
        with self._lock:
            self._require_held(trial_id, owner)
            self._artifacts.setdefault(trial_id, {})[name] = data

    def artifacts(self, trial_id: int) -> dict[str, bytes]:
        with self._lock:
            return dict(sorted(self._artifacts.get(trial_id, {}).items()))

    def _require_held(self, trial_id: int, owner: str) -> None:
        if self._held(owner, trial_id) is None:
            raise LeaseLost(f"trial {trial_id} is no longer held by this worker")

    # -- workers -------------------------------------------------------------------
    def register_worker(self, lease: Lease, slots: int, backend: str) -> None:
        now = time.time()
        with self._lock:
            self._workers[lease.owner] = WorkerRecord(
                lease.owner, lease.host, lease.pid, slots, backend, now, now
            )

    def unregister_worker(self, lease: Lease) -> None:
        with self._lock:
            self._workers.pop(lease.owner, None)

    def workers(self) -> list[WorkerRecord]:
        with self._lock:
            return sorted(self._workers.values(), key=lambda w: -w.heartbeat_at)
