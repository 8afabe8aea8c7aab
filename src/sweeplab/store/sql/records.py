"""Between records and rows, for every SQL store: the binds an outcome is written with, the
records a claim's and an experiment's rows become, and what a reclaim must write.

Free of SQLAlchemy, like ``retries``: a worker's PostgreSQL store shares them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sweeplab.jsonvalues import loads_each
from sweeplab.store.base import ClaimedTrial, ExperimentRecord, Lease
from sweeplab.trial import Outcome, TrialStatus, TrialTask

#: the binds of ``statements.register_worker``, each named after its column
WORKER_COLUMNS = ("owner", "host", "pid", "slots", "backend", "started_at", "heartbeat_at")

_STATUS_TEXT = {status: status.value for status in TrialStatus}

#: how much outcome text goes into one JSON statement: well under the 16 MiB that MariaDB
#: takes in one packet by default (max_allowed_packet), where one row each never came near
JSON_CHUNK_BYTES = 4 << 20


def outcome_params(o: Outcome, owner: str | None = None) -> dict[str, Any]:
    """The binds of record_outcome, and with ``owner`` those of record_fenced_outcome."""
    params = {
        "b_id": o.trial_id,
        "b_status": _STATUS_TEXT[o.status],
        "b_result": o.result_json,
        "b_error": o.error,
        "b_error_kind": None if o.error_kind is None else str(o.error_kind),
        "b_traceback": o.traceback,
        "b_started_at": o.started_at or None,
        "b_finished_at": (o.started_at + o.duration_s) if o.started_at else None,
        "b_duration_s": o.duration_s,
        "b_host": o.host or None,
    }
    if owner is not None:
        params["b_owner"] = owner
    return params


def first_outcomes(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """The binds of one outcome per trial, the first: in an UPDATE ... FROM a JSON batch,
    which of two would win is not defined, where one after the other the second finds the
    trial recorded."""
    first = {o.trial_id: o for o in reversed(outcomes)}
    return [outcome_params(o) for o in first.values()]


def by_size(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Outcome rows in runs of about JSON_CHUNK_BYTES of text each (one row at least)."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        grows = 200 + sum(len(row[k] or "") for k in ("b_result", "b_error", "b_traceback"))
        if chunk and size + grows > JSON_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += grows
    if chunk:
        yield chunk


def claim_params(lease: Lease, limit: int, lease_s: float, max_attempts: int) -> dict[str, Any]:
    """The binds of a claim, but for the experiments it is limited to."""
    return {
        "p_limit": limit,
        "p_max_attempts": max_attempts,
        "p_owner": lease.owner,
        "p_host": lease.host,
        "p_pid": lease.pid,
        "p_lease_s": lease_s,
    }


def claimed(rows: Sequence[Sequence[Any]], attempts: Sequence[int]) -> list[ClaimedTrial]:
    """A claim's rows (``statements.CLAIMED_COLUMNS``) as trials to run."""
    params_of = loads_each([r[2] for r in rows])
    return [
        ClaimedTrial(r[1], TrialTask(r[0], p, r[3], r[4], a))
        for r, p, a in zip(rows, params_of, attempts)
    ]


def worker(lease: Lease, slots: int, backend: str) -> dict[str, Any]:
    """The binds of ``register_worker``."""
    now = time.time()
    values = (lease.owner, lease.host, lease.pid, slots, backend, now, now)
    return dict(zip(WORKER_COLUMNS, values))


def experiment(row: Sequence[Any]) -> ExperimentRecord:
    """A row of the experiments table, in its column order."""
    id_, name, target, function_pickle, created_at = row
    if function_pickle is not None:
        function_pickle = bytes(function_pickle)  # psycopg2 reads a bytea as a memoryview
    return ExperimentRecord(id_, name, target, function_pickle, created_at)


class Lost:
    """What a reclaim found: whose trials and registrations to free, given who holds
    running trials (host, pid, any lease expired) and who is registered (host, pid, silent
    for an hour). Most of the time nobody is dead or late: two reads, and no write."""

    def __init__(
        self,
        holders: Sequence[Sequence[Any]],
        registered: Sequence[Sequence[Any]],
        host: str,
        is_alive: Callable[[int], bool],
    ) -> None:
        local = {pid for h, pid, _ in [*holders, *registered] if h == host}
        dead = [p for p in local if p is not None and not is_alive(p)]
        self.params = {"p_host": host, "p_dead_pids": dead}
        self.trials = bool(dead) or any(expired for *_, expired in holders)
        self.workers = bool(dead) or any(silent for *_, silent in registered)
