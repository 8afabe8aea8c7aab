"""Values the store contract tests share: leases, trials to add, small helpers."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sweeplab.store.base import BaseStore, ClaimedTrial, Lease, NewTrial
from sweeplab.trial import Outcome, TrialStatus

PENDING, RUNNING, DONE, FAILED = (
    TrialStatus.PENDING,
    TrialStatus.RUNNING,
    TrialStatus.DONE,
    TrialStatus.FAILED,
)

HOST = "host-a"

#: three holders on one host, and one on another host with the same pid as the first
LEASE_A = Lease("owner-a", HOST, 101)
LEASE_B = Lease("owner-b", HOST, 102)
LEASE_C = Lease("owner-c", HOST, 103)
LEASE_ELSEWHERE = Lease("owner-elsewhere", "host-b", 101)


def alive(_pid: int) -> bool:
    return True


def new_trials(n: int, start: int = 0, repetition: int = 0) -> list[NewTrial]:
    """``n`` distinct points ``{"x": i}``, one repetition each."""
    return [
        NewTrial(
            point_key=f"k{i:031d}",
            params_json=json.dumps({"x": i}, separators=(",", ":")),
            repetition=repetition,
            seed=1000 * repetition + i,
        )
        for i in range(start, start + n)
    ]


def ids_of(store: BaseStore, experiment_id: int) -> list[int]:
    return [t.id for t in store.trials(experiment_id)]


def claim(
    store: BaseStore,
    lease: Lease = LEASE_A,
    limit: int = 100,
    experiment_ids: Sequence[int] | None = None,
    lease_s: float = 60.0,
    max_attempts: int = 1,
) -> list[ClaimedTrial]:
    return store.claim(lease, limit, lease_s, max_attempts, experiment_ids)


def claimed_ids(claimed: list[ClaimedTrial]) -> list[int]:
    return [c.task.id for c in claimed]


def done(trial_id: int, **fields) -> Outcome:
    return Outcome(trial_id, DONE, result_json='{"y":1}', **fields)
