"""Trials as DataFrames: one row per trial, summaries over repetitions, metrics."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from sweeplab.errors import UsageError
from sweeplab.results import metrics_frame, results_frame, summary_frame
from sweeplab.store.base import MetricRecord
from sweeplab.trial import TrialRecord, TrialStatus

T0 = 1_700_000_000.0


def record(
    id: int,
    params: dict[str, Any],
    result: dict[str, Any] | None = None,
    *,
    repetition: int = 0,
    status: TrialStatus = TrialStatus.DONE,
    error: str | None = None,
) -> TrialRecord:
    failed = status is TrialStatus.FAILED
    return TrialRecord(
        id=id,
        experiment="exp",
        params=params,
        repetition=repetition,
        seed=1000 + id,
        status=status,
        attempts=1,
        result=result,
        error=error,
        error_kind="exception" if failed else None,
        traceback="Traceback ..." if failed else None,
        created_at=T0,
        started_at=T0 + id,
        finished_at=T0 + id + 0.5,
        duration_s=0.5,
        host="node1",
        lease_owner=None,
        lease_expires_at=None,
    )


# ----------------------------------------------------------------------- results_frame


def test_columns_in_order() -> None:
    frame = results_frame(
        [
            record(1, {"n": 10, "algo": "ga"}, {"obj": 1.5, "stats": {"mean": 2, "sd": 0.1}}),
            record(2, {"n": 20, "algo": "sa"}, {"obj": 2.5, "extra": "x"}, repetition=1),
        ]
    )
    assert list(frame.columns) == [
        "trial_id",
        "n",
        "algo",
        "repetition",
        "seed",
        "status",
        "obj",
        "stats.mean",
        "stats.sd",
        "extra",
        "attempts",
        "duration_s",
        "host",
        "error",
        "error_kind",
        "started_at",
        "finished_at",
    ]
    assert frame["trial_id"].tolist() == [1, 2]
    assert frame["n"].tolist() == [10, 20]
    assert frame["repetition"].tolist() == [0, 1]
    assert frame["seed"].tolist() == [1001, 1002]
    assert frame["status"].tolist() == ["done", "done"]
    assert frame["obj"].tolist() == [1.5, 2.5]
    assert frame["stats.mean"].iloc[0] == 2
    assert math.isnan(frame["stats.mean"].iloc[1])  # a field one trial lacks
    assert frame["extra"].tolist()[1] == "x"
    assert frame["host"].tolist() == ["node1", "node1"]
    assert frame["started_at"].iloc[0] == pd.Timestamp(T0 + 1, unit="s", tz="UTC")


def test_params_of_different_shapes_are_all_columns() -> None:
    frame = results_frame([record(1, {"n": 1}, {}), record(2, {"m": 2}, None)])
    assert list(frame.columns[:3]) == ["trial_id", "n", "m"]
    assert frame["m"].isna().tolist() == [True, False]


def test_failed_trial_row_carries_its_error() -> None:
    frame = results_frame(
        [record(1, {"n": 1}, None, status=TrialStatus.FAILED, error="ValueError: boom")]
    )
    row = frame.iloc[0]
    assert row["status"] == "failed"
    assert row["error"] == "ValueError: boom"
    assert row["error_kind"] == "exception"


@pytest.mark.parametrize("name", ["n", "status", "seed", "error", "trial_id", "duration_s"])
def test_result_field_colliding_with_a_column_is_renamed(name) -> None:
    frame = results_frame([record(1, {"n": 1}, {name: 42, "ok": 1})])
    assert f"result.{name}" in frame.columns
    assert frame[f"result.{name}"].tolist() == [42]
    assert frame["n"].tolist() == [1]
    assert frame["seed"].tolist() == [1001]
    assert frame["ok"].tolist() == [1]


def test_empty_results_frame_has_the_fixed_columns() -> None:
    frame = results_frame([])
    assert frame.empty
    assert list(frame.columns) == [
        "trial_id",
        "repetition",
        "seed",
        "status",
        "attempts",
        "duration_s",
        "host",
        "error",
        "error_kind",
        "started_at",
        "finished_at",
    ]


# ----------------------------------------------------------------------- summary_frame


def _repeated() -> list[TrialRecord]:
    trials = []
    i = 0
    for n in (10, 20):
        for algo in ("ga", "sa"):
            for rep in range(3):
                i += 1
                y = n + (100 if algo == "sa" else 0) + rep
                trials.append(
                    record(i, {"n": n, "algo": algo}, {"y": y, "tag": "t"}, repetition=rep)
                )
    # a failed trial does not count
    trials.append(record(99, {"n": 10, "algo": "ga"}, None, status=TrialStatus.FAILED))
    return trials


def test_summary_over_repetitions_by_every_parameter() -> None:
    summary = summary_frame(_repeated(), None)
    assert list(summary.index.names) == ["n", "algo"]
    row = summary.loc[(10, "ga")]
    assert row[("y", "count")] == 3
    assert row[("y", "mean")] == 11
    assert row[("y", "std")] == pytest.approx(1.0)
    assert row[("y", "min")] == 10
    assert row[("y", "max")] == 12
    assert summary.loc[(20, "sa"), ("y", "mean")] == 121
    # only numeric result fields: not the params, seeds, durations or strings
    assert set(summary.columns.get_level_values(0)) == {"y"}
    assert list(summary.columns.get_level_values(1)) == ["count", "mean", "std", "min", "max"]


def test_summary_by_a_subset() -> None:
    summary = summary_frame(_repeated(), "algo")
    assert list(summary.index) == ["ga", "sa"]
    assert summary.loc["ga", ("y", "count")] == 6
    assert summary.loc["ga", ("y", "mean")] == pytest.approx(16)
    assert summary.loc["sa", ("y", "min")] == 110
    assert summary.loc["sa", ("y", "max")] == 122
    assert summary_frame(_repeated(), ["n"]).loc[20, ("y", "count")] == 6


def test_summary_by_an_unknown_key() -> None:
    with pytest.raises(UsageError, match=r"cannot group by \['nope'\]"):
        summary_frame(_repeated(), ["n", "nope"])


def test_summary_of_no_done_trials_is_empty() -> None:
    trials = [record(1, {"n": 1}, None, status=TrialStatus.FAILED)]
    assert summary_frame(trials, None).empty
    assert summary_frame(trials, "n").empty  # n is a parameter, even with nothing done


def test_summary_by_a_parameter_only_failed_trials_set() -> None:
    trials = [
        record(1, {"n": 1}, {"y": 1.0}),
        record(2, {"n": 1, "extra": 5}, None, status=TrialStatus.FAILED),
    ]
    summary = summary_frame(trials, None)
    assert summary[("y", "count")].sum() == 1


def test_summary_by_a_list_parameter() -> None:
    # layers=[64,64] on the command line is one list value
    trials = [
        record(1, {"layers": [64, 64]}, {"y": 1.0}),
        record(2, {"layers": [64, 64]}, {"y": 3.0}, repetition=1),
        record(3, {"layers": [128]}, {"y": 5.0}),
    ]
    summary = summary_frame(trials, None)
    assert len(summary) == 2
    assert summary[("y", "mean")].sort_values().tolist() == [2.0, 5.0]


def test_summary_without_parameters_aggregates_everything() -> None:
    trials = [record(1, {}, {"y": 1.0}), record(2, {}, {"y": 3.0}, repetition=1)]
    summary = summary_frame(trials, None)
    assert summary.loc["y", "count"] == 2
    assert summary.loc["y", "mean"] == 2.0


# ----------------------------------------------------------------------- metrics_frame


def test_metrics_in_long_form() -> None:
    trials = [record(1, {"n": 10, "algo": "ga"}), record(2, {"n": 20, "algo": "sa"}, repetition=1)]
    metrics = [
        MetricRecord(1, 1, 0, "loss", 1.0, T0),
        MetricRecord(1, 1, 1, "loss", 0.5, T0 + 1),
        MetricRecord(2, 2, None, "acc", 0.9, T0 + 2),
    ]
    frame = metrics_frame(metrics, trials)
    assert list(frame.columns) == [
        "trial_id",
        "n",
        "algo",
        "repetition",
        "attempt",
        "step",
        "name",
        "value",
        "logged_at",
    ]
    assert frame["trial_id"].tolist() == [1, 1, 2]
    assert frame["n"].tolist() == [10, 10, 20]
    assert frame["repetition"].tolist() == [0, 0, 1]
    assert frame["attempt"].tolist() == [1, 1, 2]
    assert str(frame["step"].dtype) == "Int64"
    assert frame["step"].iloc[:2].tolist() == [0, 1]
    assert frame["step"].isna().tolist() == [False, False, True]
    assert frame["name"].tolist() == ["loss", "loss", "acc"]
    assert frame["value"].tolist() == [1.0, 0.5, 0.9]
    assert frame["logged_at"].iloc[2] == pd.Timestamp(T0 + 2, unit="s", tz="UTC")


def test_no_metrics() -> None:
    frame = metrics_frame([], [record(1, {"n": 1})])
    assert frame.empty
    assert "n" in frame.columns
