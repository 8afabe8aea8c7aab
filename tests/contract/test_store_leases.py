"""The store contract, continued: heartbeats, reclaiming lost trials, fencing the writes
of a holder whose lease was taken over, checkpoints, artifacts and workers. Runs over
every store through the ``store`` fixture.
"""

from __future__ import annotations

import time

import pytest

from sweeplab.errors import LeaseLost, StoreError
from sweeplab.store.base import LOST_ALLOWANCE, Lease
from sweeplab.trial import ErrorKind, Outcome
from tests.contract.values import (
    DONE,
    FAILED,
    HOST,
    LEASE_A,
    LEASE_B,
    LEASE_C,
    LEASE_ELSEWHERE,
    PENDING,
    RUNNING,
    alive,
    ids_of,
    new_trials,
)

#: long enough to be sure it has passed after EXPIRY_WAIT_S, on any clock
TINY_LEASE_S = 0.05
EXPIRY_WAIT_S = 0.2


def claim_one(store, lease, lease_s=60.0, max_attempts=1) -> int:
    (claimed,) = store.claim(lease, 1, lease_s, max_attempts)
    return claimed.task.id


def dead(*pids: int):
    return lambda pid: pid not in pids


# -- heartbeats ------------------------------------------------------------------------
def test_heartbeat_extends_every_lease_the_holder_has(store, exp):
    store.add_trials(exp, new_trials(4))
    store.claim(LEASE_A, 2, 5.0, 1)
    b = claim_one(store, LEASE_B, lease_s=5.0)
    before = {t.id: t.lease_expires_at for t in store.trials(exp, [RUNNING])}

    assert store.heartbeat(LEASE_A, 600) == 2

    after = {t.id: t.lease_expires_at for t in store.trials(exp, [RUNNING])}
    for trial_id in set(after) - {b}:
        assert after[trial_id] >= before[trial_id] + 500
        assert after[trial_id] == pytest.approx(time.time() + 600, abs=30)
    assert after[b] == before[b]
    assert store.heartbeat(LEASE_C, 600) == 0


def test_a_heartbeat_keeps_a_short_lease_from_being_reclaimed(store, exp):
    store.add_trials(exp, new_trials(1))
    trial_id = claim_one(store, LEASE_A, lease_s=TINY_LEASE_S)
    store.heartbeat(LEASE_A, 60)
    time.sleep(EXPIRY_WAIT_S)

    assert store.reclaim(HOST, alive) == 0
    assert store.trial(exp, trial_id).lease_owner == LEASE_A.owner


# -- reclaiming ------------------------------------------------------------------------
def test_reclaim_frees_expired_leases_keeping_the_attempt(store, exp):
    store.add_trials(exp, new_trials(2))
    expiring = claim_one(store, LEASE_A, lease_s=TINY_LEASE_S)
    kept = claim_one(store, LEASE_B, lease_s=60)
    time.sleep(EXPIRY_WAIT_S)

    # expiry does not depend on the host asking, nor on the holder being alive
    assert store.reclaim("some-other-host", alive) == 1

    trial = store.trial(exp, expiring)
    assert (trial.status, trial.attempts) == (PENDING, 1)
    assert (trial.lease_owner, trial.lease_expires_at) == (None, None)
    assert store.trial(exp, kept).lease_owner == LEASE_B.owner
    (again,) = store.claim(LEASE_C, 10, 60, 2)
    assert (again.task.id, again.task.attempt) == (expiring, 2)


def test_reclaim_frees_trials_whose_holder_on_this_host_is_dead(store, exp):
    store.add_trials(exp, new_trials(3))
    of_dead = claim_one(store, LEASE_A)  # pid 101 on HOST
    of_live = claim_one(store, LEASE_B)  # pid 102 on HOST
    elsewhere = claim_one(store, LEASE_ELSEWHERE)  # pid 101 on another host

    assert store.reclaim(HOST, dead(LEASE_A.pid)) == 1

    trials = {t.id: t for t in store.trials(exp)}
    assert (trials[of_dead].status, trials[of_dead].attempts) == (PENDING, 1)
    assert trials[of_dead].lease_owner is None
    assert trials[of_live].lease_owner == LEASE_B.owner
    assert trials[elsewhere].lease_owner == LEASE_ELSEWHERE.owner


def test_reclaim_leaves_live_unexpired_leases_alone(store, exp):
    store.add_trials(exp, new_trials(3))
    store.claim(LEASE_A, 3, 60, 1)
    asked: list[int] = []

    def is_alive(pid: int) -> bool:
        asked.append(pid)
        return True

    assert store.reclaim(HOST, is_alive) == 0
    assert set(asked) <= {LEASE_A.pid}
    assert store.counts(exp)[RUNNING] == 3


@pytest.mark.parametrize("max_attempts", [1, 2])
def test_a_trial_that_keeps_losing_its_holder_is_failed_as_lost(store, exp, max_attempts):
    store.add_trials(exp, new_trials(1))
    survivable = max_attempts + LOST_ALLOWANCE - 1
    for loss in range(1, survivable + 1):
        trial_id = claim_one(store, LEASE_A, max_attempts=max_attempts)
        assert store.reclaim(HOST, dead(LEASE_A.pid)) == 1
        assert store.trial(exp, trial_id).status == PENDING, f"failed after {loss} losses"

    # the last loss by expiry rather than a dead pid: both count
    trial_id = claim_one(store, LEASE_B, lease_s=TINY_LEASE_S, max_attempts=max_attempts)
    time.sleep(EXPIRY_WAIT_S)
    assert store.reclaim(HOST, alive) == 1

    trial = store.trial(exp, trial_id)
    assert (trial.status, trial.error_kind) == (FAILED, "lost")
    assert trial.error
    assert trial.attempts == max_attempts + LOST_ALLOWANCE
    assert (trial.lease_owner, trial.lease_expires_at) == (None, None)
    assert trial.finished_at == pytest.approx(time.time(), abs=30)
    assert store.claim(LEASE_C, 10, 60, max_attempts) == []


# -- fencing ---------------------------------------------------------------------------
def test_a_late_outcome_from_a_lease_that_was_taken_over_is_dropped(store, exp):
    store.add_trials(exp, new_trials(1))
    trial_id = claim_one(store, LEASE_A, lease_s=TINY_LEASE_S)
    time.sleep(EXPIRY_WAIT_S)
    assert store.reclaim(HOST, alive) == 1
    assert claim_one(store, LEASE_B, max_attempts=2) == trial_id

    late = Outcome(trial_id, DONE, result_json='{"y":"late"}', metrics=[(0, "m", 1.0, 1.0)])
    assert store.record(LEASE_A, [late]) == 0
    assert store.release(LEASE_A) == 0
    assert store.heartbeat(LEASE_A, 60) == 0
    with pytest.raises(LeaseLost):
        store.save_checkpoint(trial_id, LEASE_A.owner, b"late")
    with pytest.raises(LeaseLost):
        store.save_artifact(trial_id, LEASE_A.owner, "late.txt", b"late")

    trial = store.trial(exp, trial_id)
    assert (trial.status, trial.result, trial.lease_owner) == (RUNNING, None, LEASE_B.owner)
    assert store.metrics(exp) == []
    assert store.load_checkpoint(trial_id) is None
    assert store.artifacts(trial_id) == {}

    assert store.record(LEASE_A, [Outcome(trial_id, DONE, result_json='{"y":"late"}')]) == 0
    assert store.record(LEASE_B, [Outcome(trial_id, DONE, result_json='{"y":"b"}')]) == 1
    assert store.trial(exp, trial_id).result == {"y": "b"}


# -- checkpoints and artifacts ---------------------------------------------------------
def test_checkpoints_round_trip_and_are_replaced(store, exp):
    store.add_trials(exp, new_trials(2))
    trial_id, other = ids_of(store, exp)
    assert store.load_checkpoint(trial_id) is None
    claim_one(store, LEASE_A)

    store.save_checkpoint(trial_id, LEASE_A.owner, b"step 1")
    assert store.load_checkpoint(trial_id) == b"step 1"

    big = bytes(range(256)) * 1200  # past MySQL's 64 KiB BLOB
    store.save_checkpoint(trial_id, LEASE_A.owner, big)
    assert store.load_checkpoint(trial_id) == big
    assert store.load_checkpoint(other) is None


def test_a_checkpoint_outlives_its_attempt(store, exp):
    store.add_trials(exp, new_trials(1))
    trial_id = claim_one(store, LEASE_A, max_attempts=2)
    store.save_checkpoint(trial_id, LEASE_A.owner, b"half-way")
    store.record(LEASE_A, [Outcome(trial_id, PENDING, error="interrupted")])

    assert claim_one(store, LEASE_B, max_attempts=2) == trial_id
    assert store.load_checkpoint(trial_id) == b"half-way"


def test_checkpoint_by_a_writer_that_does_not_hold_the_trial(store, exp):
    store.add_trials(exp, new_trials(2))
    unclaimed, held_by_b = ids_of(store, exp)
    with pytest.raises(LeaseLost):
        store.save_checkpoint(unclaimed, LEASE_A.owner, b"x")
    assert claim_one(store, LEASE_A) == unclaimed
    assert claim_one(store, LEASE_B) == held_by_b

    with pytest.raises(LeaseLost) as info:
        store.save_checkpoint(held_by_b, LEASE_A.owner, b"x")
    assert isinstance(info.value, StoreError)

    store.save_checkpoint(unclaimed, LEASE_A.owner, b"mine")
    store.record(LEASE_A, [Outcome(unclaimed, DONE, result_json="{}")])
    with pytest.raises(LeaseLost):
        store.save_checkpoint(unclaimed, LEASE_A.owner, b"after the outcome")
    assert store.load_checkpoint(unclaimed) == b"mine"
    assert store.load_checkpoint(held_by_b) is None


def test_artifacts_round_trip_by_name(store, exp):
    store.add_trials(exp, new_trials(2))
    trial_id, other = ids_of(store, exp)
    claim_one(store, LEASE_A)
    big = b"\x00\xff" * 70_000

    store.save_artifact(trial_id, LEASE_A.owner, "plot.png", big)
    store.save_artifact(trial_id, LEASE_A.owner, "Log.txt", b"first")
    store.save_artifact(trial_id, LEASE_A.owner, "log.txt", b"lower")
    store.save_artifact(trial_id, LEASE_A.owner, "Log.txt", b"second")

    assert store.artifacts(trial_id) == {"Log.txt": b"second", "log.txt": b"lower", "plot.png": big}
    assert list(store.artifacts(trial_id)) == ["Log.txt", "log.txt", "plot.png"]
    assert store.artifacts(other) == {}


def test_artifact_by_a_writer_that_does_not_hold_the_trial(store, exp):
    store.add_trials(exp, new_trials(2))
    unclaimed, held_by_b = ids_of(store, exp)
    with pytest.raises(LeaseLost):
        store.save_artifact(unclaimed, LEASE_A.owner, "a.txt", b"x")
    claim_one(store, LEASE_A)
    claim_one(store, LEASE_B)

    with pytest.raises(LeaseLost):
        store.save_artifact(held_by_b, LEASE_A.owner, "a.txt", b"x")
    store.release(LEASE_A)
    with pytest.raises(LeaseLost):
        store.save_artifact(unclaimed, LEASE_A.owner, "a.txt", b"x")
    assert store.artifacts(unclaimed) == {}
    assert store.artifacts(held_by_b) == {}


# -- workers ---------------------------------------------------------------------------
def test_workers_register_heartbeat_and_unregister(store):
    assert store.workers() == []
    start = time.time()
    store.register_worker(LEASE_A, 4, "processes")

    (a,) = store.workers()
    assert (a.owner, a.host, a.pid, a.slots, a.backend) == (
        LEASE_A.owner,
        LEASE_A.host,
        LEASE_A.pid,
        4,
        "processes",
    )
    assert a.started_at == pytest.approx(start, abs=30)
    assert a.heartbeat_at == pytest.approx(start, abs=30)

    time.sleep(0.05)
    store.register_worker(LEASE_B, 1, "threads")
    assert [w.owner for w in store.workers()] == [LEASE_B.owner, LEASE_A.owner]

    time.sleep(0.05)
    store.heartbeat(LEASE_A, 60)
    workers = store.workers()
    assert [w.owner for w in workers] == [LEASE_A.owner, LEASE_B.owner]
    assert workers[0].heartbeat_at > a.heartbeat_at
    assert workers[0].started_at == a.started_at

    store.unregister_worker(LEASE_A)
    assert [w.owner for w in store.workers()] == [LEASE_B.owner]
    store.unregister_worker(LEASE_A)
    store.unregister_worker(LEASE_B)
    assert store.workers() == []


def test_registering_again_replaces_the_worker(store):
    """A retried registration (its reply lost with a dropped connection) must not fail."""
    store.register_worker(LEASE_A, 2, "threads")
    store.register_worker(LEASE_A, 8, "processes")

    (worker,) = store.workers()
    assert (worker.owner, worker.slots, worker.backend) == (LEASE_A.owner, 8, "processes")


def test_workers_of_the_same_pid_on_two_hosts_are_two_workers(store):
    twin = Lease("owner-twin", "host-b", LEASE_A.pid)
    store.register_worker(LEASE_A, 1, "serial")
    store.register_worker(twin, 1, "serial")
    assert {(w.host, w.pid) for w in store.workers()} == {(HOST, 101), ("host-b", 101)}


def test_a_lost_trial_keeps_its_error_kind_enum_value(store, exp):
    """error_kind is stored as the ErrorKind's value, for lost trials as for recorded ones."""
    store.add_trials(exp, new_trials(1))
    for _ in range(1 + LOST_ALLOWANCE):
        claim_one(store, LEASE_A)
        store.reclaim(HOST, dead(LEASE_A.pid))
    (trial,) = store.trials(exp, [FAILED])
    assert ErrorKind(trial.error_kind) is ErrorKind.LOST
