"""The store contract (``sweeplab.store.base``), run over every store: memory, SQLite,
PostgreSQL and MariaDB, through the ``store`` fixture.

This file covers experiments, adding trials and claiming them. The rest of the contract:
test_store_outcomes.py (recording, handing back, reading, resetting),
test_store_leases.py (heartbeats, reclaiming, fencing, checkpoints, artifacts, workers),
test_store_concurrency.py (threads and processes at once).
"""

from __future__ import annotations

import json
import time

import pytest

from sweeplab.errors import UnknownExperiment, UsageError
from sweeplab.store.base import NewTrial
from sweeplab.trial import ErrorKind, Outcome
from tests.contract.values import (
    DONE,
    FAILED,
    LEASE_A,
    LEASE_B,
    PENDING,
    RUNNING,
    claim,
    claimed_ids,
    ids_of,
    new_trials,
)


# -- experiments -----------------------------------------------------------------------
def test_ensure_experiment_creates_once_and_returns_the_same_id(store):
    first = store.ensure_experiment("tsp", "study:simulate", None)
    again = store.ensure_experiment("tsp", "study:simulate", None)

    assert again == first
    assert (first.name, first.target, first.function_pickle) == ("tsp", "study:simulate", None)
    assert first.created_at == pytest.approx(time.time(), abs=60)
    assert store.experiments() == [first]
    assert store.experiment("tsp") == first


def test_ensure_experiment_updates_how_the_function_is_found(store):
    first = store.ensure_experiment("tsp", "study:simulate", None)

    by_value = store.ensure_experiment("tsp", None, b"\x80\x05pickled")
    assert (by_value.id, by_value.created_at) == (first.id, first.created_at)
    assert store.experiment("tsp") == by_value
    assert (by_value.target, by_value.function_pickle) == (None, b"\x80\x05pickled")

    moved = store.ensure_experiment("tsp", "/abs/study.py:simulate", None)
    assert store.experiment("tsp") == moved
    assert (moved.target, moved.function_pickle) == ("/abs/study.py:simulate", None)
    assert len(store.experiments()) == 1


def test_experiments_are_listed_in_the_order_they_were_made(store):
    made = [store.ensure_experiment(name, None, None) for name in ("zeta", "alpha", "mid")]

    listed = store.experiments()
    assert listed == made
    assert len({e.id for e in listed}) == 3


def test_experiment_names_are_exact(store):
    """Names that differ only in case, accents or width are different experiments."""
    names = ["sweep", "Sweep", "SWEEP", "sweép", "\uff53\uff57\uff45\uff45\uff50", "日本の実験"]
    made = [store.ensure_experiment(name, f"m:{i}", None) for i, name in enumerate(names)]

    assert len({e.id for e in made}) == len(names)
    assert [e.name for e in store.experiments()] == names
    for i, name in enumerate(names):
        assert store.experiment(name).target == f"m:{i}"


def test_unknown_experiment_names_the_experiments_there_are(store):
    store.ensure_experiment("alpha", None, None)
    store.ensure_experiment("beta", None, None)

    with pytest.raises(UnknownExperiment) as info:
        store.experiment("gamma")
    message = str(info.value)
    assert "'gamma'" in message
    assert "'alpha'" in message
    assert "'beta'" in message
    assert isinstance(info.value, UsageError)


def test_unknown_experiment_in_an_empty_store(store):
    with pytest.raises(UnknownExperiment, match="'gamma'"):
        store.experiment("gamma")
    assert store.experiments() == []


# -- adding trials ---------------------------------------------------------------------
def test_add_trials_is_idempotent(store, exp):
    assert store.add_trials(exp, new_trials(5)) == 5
    assert store.add_trials(exp, new_trials(5)) == 0
    assert store.counts(exp)[PENDING] == 5


def test_add_trials_returns_exactly_the_number_of_new_rows(store, exp):
    assert store.add_trials(exp, new_trials(3)) == 3
    # 1 and 2 are there already; 3..6 are new
    assert store.add_trials(exp, iter(new_trials(6, start=1))) == 4
    assert [t.params["x"] for t in store.trials(exp)] == list(range(7))


def test_a_point_repeated_in_one_call_is_added_once(store, exp):
    rows = new_trials(3) + new_trials(1)
    assert store.add_trials(exp, rows) == 3
    assert len(store.trials(exp)) == 3


def test_repetitions_are_distinct_trials(store, exp):
    rows = [t for rep in range(3) for t in new_trials(2, repetition=rep)]
    assert store.add_trials(exp, rows) == 6
    assert store.add_trials(exp, new_trials(2, repetition=3)) == 2

    trials = store.trials(exp)
    assert sorted((t.params["x"], t.repetition) for t in trials) == [
        (x, rep) for x in range(2) for rep in range(4)
    ]
    assert {t.seed for t in trials} == {1000 * rep + x for x in range(2) for rep in range(4)}


def test_the_same_point_in_two_experiments_is_two_trials(store, exp):
    other = store.ensure_experiment("other", None, None).id
    assert store.add_trials(exp, new_trials(2)) == 2
    assert store.add_trials(other, new_trials(2)) == 2
    assert not set(ids_of(store, exp)) & set(ids_of(store, other))
    assert {t.experiment for t in store.trials(other)} == {"other"}


def test_add_trials_is_all_or_nothing(store, exp, small_chunks):
    def points_then_a_bad_one():
        yield from new_trials(10)
        raise RuntimeError("a point that cannot be stored")

    with pytest.raises(RuntimeError, match="cannot be stored"):
        store.add_trials(exp, points_then_a_bad_one())

    assert store.trials(exp) == []
    assert sum(store.counts(exp).values()) == 0
    assert store.add_trials(exp, new_trials(10)) == 10


def test_a_new_trial_is_pending_with_its_params_and_seed(store, exp):
    params = {"lr": 0.001, "name": "naïve ü 日本 🚀", "layers": [64, 64], "flag": True}
    text = json.dumps(params, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    store.add_trials(exp, [NewTrial("a" * 32, text, 7, 2**62 + 5)])

    (trial,) = store.trials(exp)
    assert trial.experiment == "exp"
    assert trial.params == params
    assert (trial.repetition, trial.seed) == (7, 2**62 + 5)
    assert (trial.status, trial.attempts) == (PENDING, 0)
    assert (trial.result, trial.error, trial.error_kind, trial.traceback) == (None,) * 4
    assert (trial.lease_owner, trial.lease_expires_at, trial.started_at) == (None,) * 3
    assert trial.created_at == pytest.approx(time.time(), abs=60)
    assert store.trial(exp, trial.id) == trial


# -- claiming --------------------------------------------------------------------------
def test_claim_takes_the_oldest_pending_trials_up_to_limit(store, exp):
    store.add_trials(exp, new_trials(5))
    ids = ids_of(store, exp)
    assert ids == sorted(ids)

    first = claim(store, limit=2)
    assert claimed_ids(first) == ids[:2]
    assert claimed_ids(claim(store, LEASE_B, limit=2)) == ids[2:4]
    assert claimed_ids(claim(store, limit=10)) == ids[4:]
    assert claim(store, limit=10) == []


def test_claim_moves_trials_to_running_under_the_lease(store, exp):
    store.add_trials(exp, new_trials(4))
    claimed = claim(store, limit=3, lease_s=120)

    assert len(claimed) == 3
    for c in claimed:
        trial = store.trial(exp, c.task.id)
        assert c.experiment_id == exp
        assert (c.task.params, c.task.repetition, c.task.seed) == (
            trial.params,
            trial.repetition,
            trial.seed,
        )
        assert c.task.attempt == 1
        assert (trial.status, trial.attempts, trial.lease_owner) == (RUNNING, 1, LEASE_A.owner)
        assert trial.lease_expires_at == pytest.approx(time.time() + 120, abs=30)
    (left,) = store.trials(exp, [PENDING])
    assert left.id not in claimed_ids(claimed)
    assert (left.lease_owner, left.attempts) == (None, 0)


def test_each_claim_counts_an_attempt(store, exp):
    store.add_trials(exp, new_trials(1))
    for attempt in (1, 2, 3):
        (c,) = claim(store, max_attempts=3)
        assert c.task.attempt == attempt
        assert store.trial(exp, c.task.id).attempts == attempt
        retry = Outcome(c.task.id, PENDING, error="E: again", error_kind=ErrorKind.EXCEPTION)
        assert store.record(LEASE_A, [retry]) == 1


def test_an_experiment_is_unfinished_while_a_trial_is_pending_or_running(store, exp):
    other = store.ensure_experiment("other", None, None).id
    assert not store.unfinished(exp)  # empty
    store.add_trials(exp, new_trials(2))
    store.add_trials(other, new_trials(1))
    assert store.unfinished(exp)  # pending
    first, second = claim(store, experiment_ids=[exp])
    assert store.record(LEASE_A, [Outcome(first.task.id, DONE)]) == 1
    assert store.unfinished(exp)  # one running
    failed = Outcome(second.task.id, FAILED, error="E", error_kind=ErrorKind.EXCEPTION)
    assert store.record(LEASE_A, [failed]) == 1
    assert not store.unfinished(exp)  # done and failed: finished, whatever the others hold
    assert store.unfinished(other)


def test_claim_only_from_the_given_experiments(store, exp):
    second = store.ensure_experiment("second", None, None).id
    third = store.ensure_experiment("third", None, None).id
    for e in (exp, second, third):
        store.add_trials(e, new_trials(2))

    from_second = claim(store, experiment_ids=[second])
    assert claimed_ids(from_second) == ids_of(store, second)
    assert {c.experiment_id for c in from_second} == {second}

    rest = claim(store, experiment_ids=[exp, third])
    assert claimed_ids(rest) == sorted(ids_of(store, exp) + ids_of(store, third))
    assert claim(store, experiment_ids=[exp, second, third]) == []


def test_claim_with_no_experiment_ids_claims_nothing(store, exp):
    store.add_trials(exp, new_trials(2))
    assert claim(store, experiment_ids=[]) == []
    assert store.counts(exp)[PENDING] == 2


def test_claim_across_all_experiments_when_experiment_ids_is_none(store, exp):
    second = store.ensure_experiment("second", None, None).id
    store.add_trials(exp, new_trials(2))
    store.add_trials(second, new_trials(2))
    store.add_trials(exp, new_trials(1, start=2))

    claimed = claim(store, limit=4)
    everything = sorted(ids_of(store, exp) + ids_of(store, second))
    assert claimed_ids(claimed) == everything[:4]
    assert {c.experiment_id for c in claimed} == {exp, second}


def test_two_leases_never_get_the_same_trial(store, exp):
    store.add_trials(exp, new_trials(5))
    a = claimed_ids(claim(store, LEASE_A, limit=3))
    b = claimed_ids(claim(store, LEASE_B, limit=3))

    assert len(a) == 3 and len(b) == 2
    assert not set(a) & set(b)
    assert {t.id: t.lease_owner for t in store.trials(exp)} == {
        **dict.fromkeys(a, LEASE_A.owner),
        **dict.fromkeys(b, LEASE_B.owner),
    }
