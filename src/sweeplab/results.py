"""Trials as pandas DataFrames: one row per trial, summaries over repetitions, metrics,
and the export formats of the CLI.

Columns of ``results``: ``trial_id``, the parameters, ``repetition``, ``seed``,
``status``, the result fields (nested dicts flattened as ``a.b``), ``attempts``,
``duration_s``, ``host``, ``error``, ``started_at``, ``finished_at``. A result field
whose name is taken by a parameter or one of those columns is called ``result.NAME``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, BinaryIO

import pandas as pd

from sweeplab.errors import UsageError
from sweeplab.jsonvalues import canonical_json
from sweeplab.store.base import MetricRecord
from sweeplab.trial import TrialColumns, TrialRecord, TrialStatus

HEAD = ["trial_id"]
MIDDLE = ["repetition", "seed", "status"]
TAIL = ["attempts", "duration_s", "host", "error", "error_kind", "started_at", "finished_at"]
FORMATS = ("table", "csv", "jsonl", "parquet")


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            flat.update(_flatten(item, name + "."))
        else:
            flat[name] = item
    return flat


def _as_columns(trials: TrialColumns | Sequence[TrialRecord]) -> TrialColumns:
    return trials if isinstance(trials, TrialColumns) else TrialColumns.of(trials)


def results_frame(trials: TrialColumns | Sequence[TrialRecord]) -> pd.DataFrame:
    t = _as_columns(trials)
    param_names = _names(t.params)
    results = t.result
    if any(type(v) is dict and v for r in results if r for v in r.values()):
        results = tuple(_flatten(r) if r else r for r in results)
    result_names = _names(results)
    taken = set(param_names) | set(HEAD) | set(MIDDLE) | set(TAIL)
    data: dict[str, Any] = {"trial_id": t.id}
    data.update(_columns(t.params, param_names))
    data.update(repetition=t.repetition, seed=t.seed, status=t.status)
    flat = _columns(results, result_names)
    data.update({(f"result.{r}" if r in taken else r): values for r, values in flat.items()})
    data.update(
        attempts=t.attempts,
        duration_s=t.duration_s,
        host=t.host,
        error=t.error,
        error_kind=t.error_kind,
        started_at=pd.to_datetime(pd.Series(t.started_at, dtype="float64"), unit="s", utc=True),
        finished_at=pd.to_datetime(pd.Series(t.finished_at, dtype="float64"), unit="s", utc=True),
    )
    return pd.DataFrame(data)


def _names(dicts: Sequence[dict[str, Any] | None]) -> list[str]:
    """Every key of ``dicts``, in the order first seen."""
    names: dict[str, None] = {}
    last = None
    for d in dicts:
        if d and d.keys() != last:  # most trials share their keys: one dict update a shape
            names.update(dict.fromkeys(d))
            last = d.keys()
    return list(names)


def _columns(dicts: Sequence[dict[str, Any] | None], names: list[str]) -> dict[str, list[Any]]:
    empty: dict[str, Any] = {}
    return {n: [(d or empty).get(n) for d in dicts] for n in names}


def summary_frame(
    trials: TrialColumns | Sequence[TrialRecord], by: str | Sequence[str] | None
) -> pd.DataFrame:
    """count/mean/std/min/max of numeric result fields of done trials, grouped by ``by``."""
    t = _as_columns(trials)
    frame = results_frame(t.where_status(TrialStatus.DONE))
    params = _names(t.params)
    keys = params if by is None else ([by] if isinstance(by, str) else list(by))
    # a parameter is a valid key even when no trial of it is done yet (the frame lacks it)
    unknown = [k for k in keys if k not in frame.columns and k not in params]
    if unknown:
        raise UsageError(
            f"cannot group by {unknown}: choose among the parameters {params} or result fields"
        )
    fixed = set(HEAD) | set(MIDDLE) | set(TAIL) | set(params) | set(keys)
    values = [
        c
        for c in frame.columns
        if c not in fixed
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
    if frame.empty or not values:
        return pd.DataFrame()
    if not keys:
        return frame[values].agg(["count", "mean", "std", "min", "max"]).T
    for key in keys:
        if key not in frame.columns:  # a parameter that only unfinished trials set
            frame[key] = None
        # list and dict values (layers=[64,64]) cannot be group keys: group by their JSON text
        elif frame[key].map(lambda v: isinstance(v, (list, dict))).any():
            frame[key] = frame[key].map(_hashable)
    return frame.groupby(keys, dropna=False)[values].agg(["count", "mean", "std", "min", "max"])


def _hashable(value: Any) -> Any:
    return canonical_json(value) if isinstance(value, (list, dict)) else value


def metrics_frame(
    metrics: Sequence[MetricRecord], trials: TrialColumns | Sequence[TrialRecord]
) -> pd.DataFrame:
    """Long form: trial_id, the parameters, repetition, attempt, step, name, value, logged_at."""
    t = _as_columns(trials)
    by_id = dict(zip(t.id, zip(t.params, t.repetition)))
    params = _names(t.params)
    rows = []
    for m in metrics:
        point, repetition = by_id.get(m.trial_id, ({}, None))
        row: dict[str, Any] = {"trial_id": m.trial_id}
        row.update(point)
        row.update(
            repetition=repetition,
            attempt=m.attempt,
            step=m.step,
            name=m.name,
            value=m.value,
            logged_at=m.logged_at,
        )
        rows.append(row)
    columns = ["trial_id", *params, "repetition", "attempt", "step", "name", "value", "logged_at"]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["step"] = frame["step"].astype("Int64")
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], unit="s", utc=True)
    return frame


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    return str(value)


def export(frame: pd.DataFrame, fmt: str, out: BinaryIO) -> None:
    """Write ``frame`` as csv, jsonl or parquet to a binary stream."""
    if fmt == "csv":
        out.write(frame.to_csv(index=False).encode())
    elif fmt == "jsonl":
        # through the json module: pandas' writer keeps only 15 significant digits
        for record in frame.to_dict(orient="records"):
            clean = {k: None if isinstance(v, float) and v != v else v for k, v in record.items()}
            out.write((json.dumps(clean, default=_json_default) + "\n").encode())
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise UsageError(
                'Parquet export needs pyarrow: pip install "sweeplab[parquet]"'
            ) from exc
        out.write(frame.to_parquet(index=False))
    else:
        raise UsageError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
