"""The store contract, continued: recording outcomes, handing trials back, reading them
and resetting them. Runs over every store through the ``store`` fixture.
"""

from __future__ import annotations

import json
import time

import pytest

import sweeplab as sl
from sweeplab.store.base import MetricRecord
from sweeplab.trial import ErrorKind, Outcome, TrialStatus
from tests.contract.values import (
    DONE,
    FAILED,
    LEASE_A,
    LEASE_B,
    PENDING,
    RUNNING,
    claim,
    claimed_ids,
    done,
    ids_of,
    new_trials,
)


# -- recording -------------------------------------------------------------------------
def test_record_done_stores_result_timings_host_and_metrics(store, exp):
    store.add_trials(exp, new_trials(2))
    (c, _) = claim(store)
    t0 = time.time() - 10
    metrics = [(0, "loss", 0.5, t0 + 1), (1, "loss", 0.25, t0 + 2), (None, "acc", 0.9, t0 + 3)]
    outcome = Outcome(
        c.task.id,
        DONE,
        result_json='{"objective":3.5,"tags":["a"]}',
        started_at=t0,
        duration_s=1.5,
        host="node-7",
        metrics=metrics,
    )

    assert store.record(LEASE_A, [outcome]) == 1

    trial = store.trial(exp, c.task.id)
    assert trial.status == DONE
    assert trial.result == {"objective": 3.5, "tags": ["a"]}
    assert (trial.error, trial.error_kind, trial.traceback) == (None, None, None)
    assert trial.started_at == pytest.approx(t0)
    assert trial.duration_s == pytest.approx(1.5)
    assert trial.finished_at == pytest.approx(t0 + 1.5)
    assert trial.host == "node-7"
    assert (trial.lease_owner, trial.lease_expires_at, trial.attempts) == (None, None, 1)
    assert store.metrics(exp) == [
        MetricRecord(c.task.id, 1, step, name, value, at) for step, name, value, at in metrics
    ]


def test_metrics_are_listed_by_trial_then_in_the_order_they_were_logged(store, exp):
    other = store.ensure_experiment("other", None, None).id
    store.add_trials(exp, new_trials(2))
    store.add_trials(other, new_trials(1))
    first, second = claimed_ids(claim(store, limit=2, experiment_ids=[exp]))
    (elsewhere,) = claimed_ids(claim(store, experiment_ids=[other]))
    logged = [(None, "z", 1.0, 5.0), (0, "a", 2.0, 1.0)]  # not in name or time order

    store.record(LEASE_A, [done(second, metrics=logged), done(elsewhere, metrics=logged)])
    store.record(LEASE_A, [done(first, metrics=logged)])

    assert [(m.trial_id, m.name) for m in store.metrics(exp)] == [
        (first, "z"),
        (first, "a"),
        (second, "z"),
        (second, "a"),
    ]
    assert {m.trial_id for m in store.metrics(other)} == {elsewhere}


def test_record_failed_stores_error_kind_and_traceback(store, exp):
    store.add_trials(exp, new_trials(1))
    (c,) = claim(store)
    tb = "Traceback (most recent call last):\n" + "  frame\n" * 5000  # past MySQL's 64 KiB TEXT
    outcome = Outcome(
        c.task.id,
        FAILED,
        error="ZeroDivisionError: division by zero",
        error_kind=ErrorKind.EXCEPTION,
        traceback=tb,
        started_at=time.time(),
        duration_s=0.25,
        host="node-1",
    )

    assert store.record(LEASE_A, [outcome]) == 1

    trial = store.trial(exp, c.task.id)
    assert (trial.status, trial.result) == (FAILED, None)
    assert trial.error == "ZeroDivisionError: division by zero"
    assert trial.error_kind == "exception"
    assert trial.traceback == tb
    assert (trial.duration_s, trial.host) == (pytest.approx(0.25), "node-1")


def test_a_large_result_round_trips(store, exp):
    store.add_trials(exp, new_trials(1))
    (c,) = claim(store)
    result = {"values": list(range(30_000)), "text": "é" * 40_000}
    outcome = done(c.task.id)
    outcome.result_json = json.dumps(result, ensure_ascii=False)
    store.record(LEASE_A, [outcome])
    assert store.trial(exp, c.task.id).result == result


def test_a_pending_outcome_hands_the_trial_back_keeping_its_error(store, exp):
    store.add_trials(exp, new_trials(1))
    (c,) = claim(store, max_attempts=2)
    retry = Outcome(
        c.task.id,
        PENDING,
        error="TimeoutError: slow",
        error_kind=ErrorKind.TIMEOUT,
        traceback="tb 1",
        started_at=time.time(),
        duration_s=2.0,
        metrics=[(None, "loss", 1.0, time.time())],
    )

    assert store.record(LEASE_A, [retry]) == 1

    trial = store.trial(exp, c.task.id)
    assert (trial.status, trial.attempts) == (PENDING, 1)
    assert (trial.error, trial.traceback) == ("TimeoutError: slow", "tb 1")
    assert trial.error_kind == "timeout"
    assert (trial.lease_owner, trial.lease_expires_at) == (None, None)

    (again,) = claim(store, LEASE_B, max_attempts=2)
    assert (again.task.id, again.task.attempt) == (c.task.id, 2)
    last = done(c.task.id, metrics=[(None, "loss", 0.5, time.time())])
    assert store.record(LEASE_B, [last]) == 1

    trial = store.trial(exp, c.task.id)
    assert (trial.status, trial.attempts, trial.error) == (DONE, 2, None)
    assert [(m.attempt, m.value) for m in store.metrics(exp)] == [(1, 1.0), (2, 0.5)]


def test_record_drops_outcomes_of_trials_the_lease_does_not_hold(store, exp):
    store.add_trials(exp, new_trials(4))
    never_claimed = ids_of(store, exp)[3]
    a1, a2 = claimed_ids(claim(store, LEASE_A, limit=2))
    (b1,) = claimed_ids(claim(store, LEASE_B, limit=1))

    outcomes = [done(a1), done(never_claimed), done(b1), done(a2), done(10**9)]
    assert store.record(LEASE_A, outcomes) == 2

    statuses = {t.id: t.status for t in store.trials(exp)}
    assert statuses == {a1: DONE, a2: DONE, b1: RUNNING, never_claimed: PENDING}
    assert store.trial(exp, b1).lease_owner == LEASE_B.owner


def test_an_outcome_is_recorded_once(store, exp):
    store.add_trials(exp, new_trials(1))
    (c,) = claim(store)
    first = Outcome(c.task.id, DONE, result_json='{"y":1}', metrics=[(0, "m", 1.0, 1.0)])
    second = Outcome(c.task.id, FAILED, error="late", metrics=[(0, "m", 2.0, 2.0)])

    assert store.record(LEASE_A, [first, second]) == 1
    assert store.record(LEASE_A, [second]) == 0

    trial = store.trial(exp, c.task.id)
    assert (trial.status, trial.result, trial.error) == (DONE, {"y": 1}, None)
    assert [m.value for m in store.metrics(exp)] == [1.0]


def test_an_outcome_is_recorded_once_without_metrics_too(store, exp):
    # (a batch without metrics is fenced inside its UPDATE, not by a read first)
    store.add_trials(exp, new_trials(2))
    a, b = claimed_ids(claim(store, limit=2))
    first, second = done(a), Outcome(a, FAILED, error="late")

    assert store.record(LEASE_A, [first, second, done(b)]) == 2
    assert store.record(LEASE_A, [second, done(b)]) == 0

    trial = store.trial(exp, a)
    assert (trial.status, trial.result, trial.error) == (DONE, {"y": 1}, None)
    assert store.counts(exp)[DONE] == 2


def test_a_batch_larger_than_one_statement_takes_is_recorded_whole(store, exp, monkeypatch):
    # server stores write a batch as JSON, split where it would outgrow one statement
    from sweeplab.store.sql import records

    monkeypatch.setattr(records, "JSON_CHUNK_BYTES", 5_000)
    store.add_trials(exp, new_trials(12))
    ids = claimed_ids(claim(store, limit=12))
    big = [Outcome(i, DONE, result_json=json.dumps({"text": "é" * 1_500, "i": i})) for i in ids]

    assert store.record(LEASE_A, [*big, done(ids[0])]) == 12

    assert {t.id: t.result for t in store.trials(exp)} == {
        i: {"text": "é" * 1_500, "i": i} for i in ids
    }


def _nul_in_error_and_result(x: int) -> dict[str, str]:
    if x:
        raise ValueError("bad \x00 byte")
    return {"s": "ok \x00 byte"}


def test_a_nul_byte_in_an_error_or_a_result_is_recorded(store_url):
    exp = sl.Experiment(_nul_in_error_and_result, store=store_url)
    exp.add(sl.grid(x=[0, 1]))

    exp.run()

    frame = exp.results().set_index("x")
    assert frame.loc[0, "s"] == "ok \x00 byte"  # JSON keeps it: it is data
    assert frame.loc[1, "error"] == "ValueError: bad \\x00 byte"


def test_record_nothing(store, exp):
    assert store.record(LEASE_A, []) == 0


# -- handing back ----------------------------------------------------------------------
def test_release_refunds_the_attempt_and_returns_to_pending(store, exp):
    store.add_trials(exp, new_trials(3))
    claim(store, limit=3)

    assert store.release(LEASE_A) == 3

    for trial in store.trials(exp):
        assert (trial.status, trial.attempts) == (PENDING, 0)
        assert (trial.lease_owner, trial.lease_expires_at) == (None, None)
    assert [c.task.attempt for c in claim(store)] == [1, 1, 1]


def test_release_with_ids_releases_only_those(store, exp):
    store.add_trials(exp, new_trials(3))
    first, *others = claimed_ids(claim(store, limit=3))

    assert store.release(LEASE_A, [first]) == 1

    trials = {t.id: t for t in store.trials(exp)}
    assert (trials[first].status, trials[first].attempts) == (PENDING, 0)
    assert [(trials[i].status, trials[i].attempts) for i in others] == [(RUNNING, 1)] * 2


def test_release_only_hands_back_what_the_lease_holds(store, exp):
    store.add_trials(exp, new_trials(5))
    a = claimed_ids(claim(store, LEASE_A, limit=2))
    b = claimed_ids(claim(store, LEASE_B, limit=2))
    store.record(LEASE_A, [done(a[1])])

    assert store.release(LEASE_A, [*b, a[1]]) == 0
    assert store.release(LEASE_B) == 2
    assert store.release(LEASE_A) == 1

    statuses = {t.id: (t.status, t.attempts) for t in store.trials(exp)}
    assert statuses[a[0]] == (PENDING, 0)
    assert statuses[a[1]] == (DONE, 1)
    assert [statuses[i] for i in b] == [(PENDING, 0)] * 2


def test_release_after_a_retry_keeps_the_earlier_attempt(store, exp):
    store.add_trials(exp, new_trials(1))
    (c,) = claim(store, max_attempts=3)
    store.record(LEASE_A, [Outcome(c.task.id, PENDING, error="E: 1")])
    claim(store, max_attempts=3)

    assert store.release(LEASE_A, [c.task.id]) == 1

    trial = store.trial(exp, c.task.id)
    assert (trial.status, trial.attempts, trial.error) == (PENDING, 1, "E: 1")
    assert claim(store)[0].task.attempt == 2


# -- reading and resetting -------------------------------------------------------------
def _one_of_each(store, exp) -> dict[TrialStatus, int]:
    """Trials 1..5 of ``exp``: done, failed, running, pending, pending."""
    store.add_trials(exp, new_trials(5))
    d, f, r = claimed_ids(claim(store, limit=3))
    failure = Outcome(f, FAILED, error="E: x", error_kind=ErrorKind.CRASH, traceback="tb")
    failure.started_at, failure.duration_s, failure.host = time.time(), 1.0, "node"
    store.record(LEASE_A, [done(d, started_at=time.time(), duration_s=1.0, host="n"), failure])
    return {DONE: d, FAILED: f, RUNNING: r}


def test_counts_have_every_status(store, exp):
    _one_of_each(store, exp)
    empty = store.ensure_experiment("empty", None, None).id

    assert store.counts(exp) == {PENDING: 2, RUNNING: 1, DONE: 1, FAILED: 1}
    assert store.counts(empty) == dict.fromkeys(TrialStatus, 0)


def test_trials_by_status_in_the_order_they_were_added(store, exp):
    ids = _one_of_each(store, exp)
    everything = ids_of(store, exp)

    assert len(everything) == 5 and everything == sorted(everything)
    assert [t.id for t in store.trials(exp, [DONE])] == [ids[DONE]]
    assert [t.id for t in store.trials(exp, [FAILED, DONE])] == [ids[DONE], ids[FAILED]]
    assert [t.status for t in store.trials(exp, [PENDING])] == [PENDING, PENDING]
    assert [t.id for t in store.trials(exp, list(TrialStatus))] == everything


def test_trial_of_another_experiment_or_unknown_id_is_none(store, exp):
    other = store.ensure_experiment("other", None, None).id
    store.add_trials(exp, new_trials(1))
    (trial_id,) = ids_of(store, exp)

    assert store.trial(exp, trial_id).id == trial_id
    assert store.trial(other, trial_id) is None
    assert store.trial(exp, trial_id + 1000) is None


def test_reset_failed_clears_result_error_and_attempts(store, exp):
    ids = _one_of_each(store, exp)
    before = {t.id: t for t in store.trials(exp)}

    assert store.reset(exp, [FAILED]) == 1

    trial = store.trial(exp, ids[FAILED])
    assert (trial.status, trial.attempts) == (PENDING, 0)
    assert (trial.result, trial.error, trial.error_kind, trial.traceback) == (None,) * 4
    assert (trial.started_at, trial.finished_at, trial.duration_s, trial.host) == (None,) * 4
    assert (trial.params, trial.seed, trial.created_at) == (
        before[trial.id].params,
        before[trial.id].seed,
        before[trial.id].created_at,
    )
    assert store.trial(exp, ids[DONE]) == before[ids[DONE]]
    assert store.trial(exp, ids[RUNNING]) == before[ids[RUNNING]]
    assert claim(store, limit=1)[0].task.attempt == 1


def test_reset_all_fences_the_lease_of_a_running_trial(store, exp):
    ids = _one_of_each(store, exp)

    assert store.reset(exp, list(TrialStatus)) == 5

    assert store.counts(exp) == {PENDING: 5, RUNNING: 0, DONE: 0, FAILED: 0}
    assert {(t.attempts, t.result, t.lease_owner) for t in store.trials(exp)} == {(0, None, None)}
    assert store.record(LEASE_A, [done(ids[RUNNING])]) == 0
    assert store.trial(exp, ids[RUNNING]).status == PENDING


def test_reset_touches_only_its_experiment(store, exp):
    other = store.ensure_experiment("other", None, None).id
    _one_of_each(store, exp)
    store.add_trials(other, new_trials(1))
    (c,) = claim(store, experiment_ids=[other])
    store.record(LEASE_A, [Outcome(c.task.id, FAILED, error="E")])

    assert store.reset(exp, [FAILED]) == 1
    assert store.counts(other)[FAILED] == 1


def test_recent_finishes_are_of_trials_that_finished_newest_first(store, exp):
    before = time.time() - 100
    store.add_trials(exp, new_trials(5))
    d, f, r, d2 = claimed_ids(claim(store, limit=4, max_attempts=2))
    now = time.time()
    store.record(
        LEASE_A,
        [
            done(d, started_at=now - 50, duration_s=0.5),
            Outcome(f, FAILED, error="E", started_at=now - 40, duration_s=0.5),
            Outcome(r, PENDING, error="E", started_at=now, duration_s=0.5),  # to be retried
            done(d2, started_at=now - 30, duration_s=0.5),
        ],
    )

    assert store.recent_finishes(exp, before, 10) == pytest.approx(
        [now - 29.5, now - 39.5, now - 49.5], abs=1e-3
    )
    assert store.recent_finishes(exp, before, 2) == pytest.approx(
        [now - 29.5, now - 39.5], abs=1e-3
    )
    assert store.recent_finishes(exp, now - 45, 10) == pytest.approx(
        [now - 29.5, now - 39.5], abs=1e-3
    )
    assert store.recent_finishes(exp, now + 60, 10) == []


# -- reading column by column (what results() reads) ------------------------------------
def test_trial_columns_hold_what_trials_hold_in_id_order(store, exp):
    other = store.ensure_experiment("other", None, None).id
    store.add_trials(exp, new_trials(4))
    store.add_trials(other, new_trials(2))
    a, b, c = claimed_ids(claim(store, limit=3, experiment_ids=[exp]))
    nested = Outcome(
        a, DONE, result_json='{"y":1.5,"stats":{"mean":2,"tags":["x"]},"s":"\\u00e9\\""}'
    )
    store.record(LEASE_A, [nested, done(b), Outcome(c, FAILED, error="ValueError: boom")])

    columns = store.trial_columns(exp)

    records = store.trials(exp)
    assert columns.id == tuple(r.id for r in records) == tuple(sorted(columns.id))
    assert len(columns) == 4
    assert columns.params == tuple(r.params for r in records)
    assert columns.result == tuple(r.result for r in records)
    assert columns.result[0] == {"y": 1.5, "stats": {"mean": 2, "tags": ["x"]}, "s": 'é"'}
    assert columns.status == ("done", "done", "failed", "pending")
    assert columns.error == tuple(r.error for r in records)
    assert columns.started_at == tuple(r.started_at for r in records)
    assert columns.seed == tuple(r.seed for r in records)


def test_trial_columns_filter_by_status_and_may_be_empty(store, exp):
    store.add_trials(exp, new_trials(3))
    (first,) = claimed_ids(claim(store, limit=1))
    store.record(LEASE_A, [done(first)])

    assert store.trial_columns(exp, [DONE]).id == (first,)
    assert len(store.trial_columns(exp, [FAILED])) == 0
    assert store.trial_columns(exp, [FAILED]).params == ()
    assert len(store.trial_columns(exp, [PENDING, DONE])) == 3


# -- counts ----------------------------------------------------------------------------
def _counted(store, exp) -> dict[TrialStatus, int]:
    """The counts a store should report: its trials, counted one by one."""
    statuses = [t.status for t in store.trials(exp)]
    return {s: statuses.count(s) for s in TrialStatus}


def test_counts_follow_every_kind_of_change(store, exp):
    # SQLite keeps a tally beside the trials (schema.py): every path that changes a
    # status must move it, here checked against the trials themselves after each step
    other = store.ensure_experiment("other", None, None).id
    store.add_trials(other, new_trials(3))
    steps = [
        lambda: store.add_trials(exp, new_trials(6)),
        lambda: store.add_trials(exp, new_trials(8)),  # 6 already there: 2 added
        lambda: claim(store, limit=5, experiment_ids=[exp]),
        lambda: store.record(LEASE_A, [done(i) for i in _running(store, exp)[:2]]),
        lambda: store.record(LEASE_A, [Outcome(_running(store, exp)[0], FAILED, error="boom")]),
        lambda: store.release(LEASE_A, _running(store, exp)[:1]),
        lambda: claim(store, LEASE_B, limit=2, experiment_ids=[exp], lease_s=0.0),
        lambda: store.reclaim("host-a", lambda pid: pid != LEASE_A.pid),
        lambda: store.reset(exp, [FAILED]),
        lambda: store.reset(exp, list(TrialStatus)),
    ]
    for step in steps:
        step()
        assert store.counts(exp) == _counted(store, exp)
    assert store.counts(other) == {PENDING: 3, RUNNING: 0, DONE: 0, FAILED: 0}


def _running(store, exp) -> list[int]:
    return [t.id for t in store.trials(exp) if t.status == RUNNING]
