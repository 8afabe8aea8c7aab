"""What travels between processes keeps every field: a claimed trial and its outcome."""

from __future__ import annotations

import pickle

import cloudpickle

from sweeplab.trial import ErrorKind, Outcome, TrialStatus, TrialTask


def test_a_task_and_an_outcome_survive_pickling_whole():
    task = TrialTask(7, {"a": 1, "b": [2.5, None]}, repetition=3, seed=12345, attempt=2)
    outcome = Outcome(
        7,
        TrialStatus.FAILED,
        result_json=None,
        error="boom",
        error_kind=ErrorKind.EXCEPTION,
        traceback="Traceback ...",
        started_at=1.5,
        duration_s=0.25,
        host="h",
        metrics=[(0, "loss", 0.5, 2.0)],
    )
    for dumps in (pickle.dumps, cloudpickle.dumps):
        assert pickle.loads(dumps(task)) == task
        assert pickle.loads(dumps(outcome)) == outcome
