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
from sweeplab.trial import TrialRecord, TrialStatus

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


def results_frame(trials: Sequence[TrialRecord]) -> pd.DataFrame:
    param_names: dict[str, None] = {}
    result_names: dict[str, None] = {}
    flat_results = []
    for t in trials:
        param_names.update(dict.fromkeys(t.params))
        flat = _flatten(t.result) if t.result else {}
        result_names.update(dict.fromkeys(flat))
        flat_results.append(flat)
    taken = set(param_names) | set(HEAD) | set(MIDDLE) | set(TAIL)
    renamed = {r: (f"result.{r}" if r in taken else r) for r in result_names}
    rows = []
    for t, flat in zip(trials, flat_results):
        row: dict[str, Any] = {"trial_id": t.id, **t.params}
        row.update(repetition=t.repetition, seed=t.seed, status=str(t.status))
        row.update({renamed[k]: v for k, v in flat.items()})
        row.update(
            attempts=t.attempts,
            duration_s=t.duration_s,
            host=t.host,
            error=t.error,
            error_kind=t.error_kind,
            started_at=t.started_at,
            finished_at=t.finished_at,
        )
        rows.append(row)
    columns = [*HEAD, *param_names, *MIDDLE, *renamed.values(), *TAIL]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for stamp in ("started_at", "finished_at"):
        frame[stamp] = pd.to_datetime(frame[stamp], unit="s", utc=True)
    return frame


def summary_frame(trials: Sequence[TrialRecord], by: str | Sequence[str] | None) -> pd.DataFrame:
    """count/mean/std/min/max of numeric result fields of done trials, grouped by ``by``."""
    frame = results_frame([t for t in trials if t.status is TrialStatus.DONE])
    params = list(dict.fromkeys(k for t in trials for k in t.params))
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


def metrics_frame(metrics: Sequence[MetricRecord], trials: Sequence[TrialRecord]) -> pd.DataFrame:
    """Long form: trial_id, the parameters, repetition, attempt, step, name, value, logged_at."""
    by_id = {t.id: t for t in trials}
    params = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = []
    for m in metrics:
        t = by_id.get(m.trial_id)
        row: dict[str, Any] = {"trial_id": m.trial_id}
        row.update(t.params if t else {})
        row.update(
            repetition=t.repetition if t else None,
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
