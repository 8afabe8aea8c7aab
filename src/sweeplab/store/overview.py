"""An overview of a store: each experiment's counts and rate, and the workers.

What ``sweeplab status`` shows, and what a script watching a sweep wants. It must be
quick on a store of a million trials, so a plain ``sqlite:///FILE`` is read with the
standard library's ``sqlite3`` (``sql/sqlite_file.py``: no SQLAlchemy, and counts from
SQLite's tally rather than counted). Any other store, or an SQLite file that reader is
not sure of (another schema version, a URL with options, a file it cannot read, an
experiment it does not find), is read through the store contract, which also gives the
errors their wording.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeplab.store.base import BaseStore

#: the rate is of the trials finished in this last stretch of time ...
RATE_WINDOW_S = 60.0
#: ... or of this many latest ones, if sooner: a quick sweep's rate costs no more to read
RATE_TRIALS = 1000


@dataclass(frozen=True)
class ExperimentOverview:
    name: str
    #: trials in each status, every status present
    counts: dict[str, int]
    #: trials finished per second lately (RATE_WINDOW_S, RATE_TRIALS)
    rate: float

    @property
    def trials(self) -> int:
        return sum(self.counts.values())

    @property
    def eta_s(self) -> float | None:
        """Seconds until nothing is left at the current rate; None without a rate or
        with nothing left."""
        left = self.counts["pending"] + self.counts["running"]
        return left / self.rate if self.rate > 0 and left else None


@dataclass(frozen=True)
class WorkerOverview:
    host: str
    pid: int
    backend: str
    slots: int
    started_at: float
    heartbeat_at: float


@dataclass(frozen=True)
class StoreOverview:
    #: the store's URL, password hidden
    url: str
    experiments: list[ExperimentOverview]
    #: registered workers, the most recent heartbeat first
    workers: list[WorkerOverview]


def overview(store: str | BaseStore | None = None, experiment: str | None = None) -> StoreOverview:
    """Counts and rate of every experiment in ``store`` (or only of ``experiment``),
    and the workers registered there."""
    if store is None or isinstance(store, str):
        from sweeplab.store import default_url

        url = store or default_url()
        path = _sqlite_file(url)
        found = _read_sqlite(path, experiment) if path is not None else None
        if found is not None:
            return StoreOverview(url, *found)
    return _read_store(store, experiment)


def _sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///FILE`` URL; None for anything else."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or any(c in url for c in "?#%"):
        return None
    path = Path(url[len(prefix) :])
    return path if path.is_file() else None


def _read_sqlite(
    path: Path, experiment: str | None
) -> tuple[list[ExperimentOverview], list[WorkerOverview]] | None:
    """The SQLite file's overview, or None where the contract's reading must answer."""
    from sweeplab.store.sql.sqlite_file import read_overview

    now = time.time()
    try:
        found = read_overview(path, now - RATE_WINDOW_S, RATE_TRIALS, experiment)
    except (sqlite3.Error, OSError):
        return None  # the contract's reading says what is wrong
    if found is None or not found[0]:
        return None  # (no such experiment: the contract's reading names the ones there are)
    rows, workers = found
    experiments = [ExperimentOverview(r.name, r.counts, _rate(r.finishes, now)) for r in rows]
    return experiments, [WorkerOverview(*w) for w in workers]


def _read_store(store: str | BaseStore | None, experiment: str | None) -> StoreOverview:
    from sweeplab.store import open_store

    opened = open_store(store, create=False)
    try:
        names = [experiment] if experiment else [e.name for e in opened.experiments()]
        now = time.time()
        experiments = []
        for name in names:
            record = opened.experiment(name)
            counts = {str(status): n for status, n in opened.counts(record.id).items()}
            finishes = opened.recent_finishes(record.id, now - RATE_WINDOW_S, RATE_TRIALS)
            experiments.append(ExperimentOverview(name, counts, _rate(finishes, now)))
        workers = [
            WorkerOverview(w.host, w.pid, w.backend, w.slots, w.started_at, w.heartbeat_at)
            for w in opened.workers()
        ]
        return StoreOverview(opened.display_url, experiments, workers)
    finally:
        if opened is not store:  # opened here from a URL
            opened.close()


def _rate(finishes: list[float], now: float) -> float:
    """Trials a second, from when the latest ones finished (newest first)."""
    if len(finishes) < RATE_TRIALS:
        return len(finishes) / RATE_WINDOW_S
    return len(finishes) / max(now - finishes[-1], 1e-3)
