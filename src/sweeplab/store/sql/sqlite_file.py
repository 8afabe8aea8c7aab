"""Reading an SQLite store file without writing a byte, and without SQLAlchemy (whose
import alone costs 0.2 s): whether a file is a store, and what ``status`` shows of one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from sweeplab.interpreter import note_sqlite_opened


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path`` that leaves no file beside it.

    Even read-only, SQLite makes the -wal and -shm files of a WAL database that no one
    has open. A database that no one writes (no -wal or -journal file beside it) has
    everything in its main file, so it is read as immutable instead, which makes neither.

    Python never opens the file itself: closing any descriptor of a file drops every POSIX
    lock the process holds on it, and with them the locks by which this process's own
    SQLite connections tell other processes that they use the database. The last of those
    to close would then delete the WAL and its index under them, and they would read a
    stale database from then on, or write to it as if it were current.
    """
    note_sqlite_opened()
    beside = (path.with_name(f"{path.name}-{suffix}") for suffix in ("wal", "journal"))
    options = "mode=ro" if any(p.exists() for p in beside) else "mode=ro&immutable=1"
    # autocommit: a read opens no transaction unless asked to (read_overview asks)
    return sqlite3.connect(f"{path.resolve().as_uri()}?{options}", uri=True, isolation_level=None)


#: the store schema ``read_overview`` understands (a test holds it to SCHEMA_VERSION)
READS_SCHEMA = 2
STATUSES = ("pending", "running", "done", "failed")


class ExperimentRows(NamedTuple):
    name: str
    #: trials in each of STATUSES
    counts: dict[str, int]
    #: when its latest trials finished (done or failed), the newest first
    finishes: list[float]


def read_overview(
    path: Path, since: float, limit: int, experiment: str | None = None
) -> tuple[list[ExperimentRows], list[tuple]] | None:
    """What ``sweeplab status`` shows of the store at ``path``, in one snapshot: each
    experiment's (or only ``experiment``'s) counts from the tally (``schema.tally``) and
    up to ``limit`` finishes after ``since``; the workers (host, pid, backend, slots,
    started_at, heartbeat_at), the latest heartbeat first. None for a file of another
    schema version, or where the tally does not hold."""
    db = read_only(path)
    try:
        db.execute("BEGIN")  # one snapshot for every read below
        version = db.execute(
            "SELECT value FROM sweeplab_meta WHERE key = 'schema_version'"
        ).fetchone()
        if version is None or version[0] != str(READS_SCHEMA):
            return None
        tally: dict[int, dict[str, int]] = {}
        for id_, status, n in db.execute("SELECT experiment_id, status, n FROM sweeplab_tally"):
            tally.setdefault(id_, {})[status] = n
        experiments = []
        names = db.execute(
            "SELECT id, name FROM sweeplab_experiments WHERE ? IS NULL OR name = ? ORDER BY id",
            (experiment, experiment),
        ).fetchall()
        for id_, name in names:
            finishes = db.execute(
                # as statements.recent_finishes: a trial handed back for a retry has a
                # finished_at too, but has not finished
                "SELECT finished_at FROM sweeplab_trials WHERE experiment_id = ? "
                "AND finished_at > ? AND status IN ('done', 'failed') "
                "ORDER BY finished_at DESC LIMIT ?",
                (id_, since, limit),
            ).fetchall()
            counts = {s: tally.get(id_, {}).get(s, 0) for s in STATUSES}
            if not _tally_holds(db, id_, counts):
                return None  # the store's own counts() counts it afresh
            experiments.append(ExperimentRows(name, counts, [f for (f,) in finishes]))
        workers = db.execute(
            "SELECT host, pid, backend, slots, started_at, heartbeat_at "
            "FROM sweeplab_workers ORDER BY heartbeat_at DESC"
        ).fetchall()
        return experiments, workers
    finally:
        db.close()


def tally_holds(counts: Iterable[int], present: Iterable[bool]) -> bool:
    """Whether tallied counts agree with the trials where a run's end is decided: a status
    tallied empty has no trial, one tallied above zero has some, and none is below zero
    (``present``: whether each status has a trial). ``SQLStore.counts`` uses it too."""
    return all(n >= 0 and (n > 0) == bool(there) for n, there in zip(counts, present))


def _tally_holds(db: sqlite3.Connection, experiment_id: int, counts: dict[str, int]) -> bool:
    present = [
        db.execute(
            "SELECT EXISTS (SELECT 1 FROM sweeplab_trials WHERE experiment_id = ? AND status = ?)",
            (experiment_id, status),
        ).fetchone()[0]
        for status in counts
    ]
    return tally_holds(counts.values(), present)
