"""The one schema, portable across SQLite, PostgreSQL and MySQL/MariaDB.

Bump SCHEMA_VERSION whenever a table changes, and teach ``upgrade`` the step: an older
store is brought up to date when it is opened, a newer one is refused with an error that
names the fix.

Version 2 added the SQLite tally (below).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import mysql

from sweeplab.store.sql import dialects

SCHEMA_VERSION = 2
#: the oldest schema ``upgrade`` brings up to date
OLDEST_UPGRADABLE = 1

# SQLite only autoincrements an INTEGER PRIMARY KEY; MySQL's TEXT and BLOB stop at 64 KiB.
Id = BigInteger().with_variant(Integer, "sqlite")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
LongBlob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

# MySQL/MariaDB compare text with the database's default collation, usually
# case- and accent-insensitive (utf8mb4_general_ci): "Sweep" and "sweep" would be one
# experiment, "Model.pt" and "model.pt" one artifact. Binary collation compares text
# exactly, as SQLite and PostgreSQL do, and utf8mb4 holds any text whatever the
# server's default charset. (Trailing spaces still compare equal there: PAD SPACE.)
_MYSQL_TEXT = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def _where_not_null(column: str) -> dict[str, Any]:
    # SQLite only: naming postgresql_where here would import SQLAlchemy's PostgreSQL dialect
    # (20 ms) in every process that opens any store, a SQLite one included
    return {"sqlite_where": text(f"{column} IS NOT NULL")}


metadata = MetaData()

meta = Table(
    "sweeplab_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    **_MYSQL_TEXT,
)

experiments = Table(
    "sweeplab_experiments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("target", Text),
    Column("function_pickle", LongBlob),
    Column("created_at", Double, nullable=False),
    **_MYSQL_TEXT,
)

trials = Table(
    "sweeplab_trials",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("experiment_id", Id, ForeignKey("sweeplab_experiments.id"), nullable=False),
    Column("point_key", String(32), nullable=False),
    Column("repetition", Integer, nullable=False),
    Column("params", LongText, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_host", String(255)),
    Column("lease_pid", Integer),
    Column("lease_expires_at", Double),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    Column("duration_s", Double),
    Column("host", String(255)),
    Column("result", LongText),
    Column("error", Text),
    Column("error_kind", String(16)),
    Column("traceback", LongText),
    UniqueConstraint("experiment_id", "point_key", "repetition", name="sweeplab_trials_point"),
    # the claim scans pending trials of some experiments in id order
    Index("sweeplab_trials_claim", "experiment_id", "status", "id"),
    # Partial on SQLite: a pending trial has neither a lease nor a finish, so adding a
    # million trials writes no entry in either index.
    Index("sweeplab_trials_lease", "lease_owner", **_where_not_null("lease_owner")),
    # status shows the rate of trials finished lately
    Index(
        "sweeplab_trials_finished",
        "experiment_id",
        "finished_at",
        **_where_not_null("finished_at"),
    ),
    **_MYSQL_TEXT,
)

metrics = Table(
    "sweeplab_metrics",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("trial_id", Id, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("step", BigInteger),
    Column("name", String(255), nullable=False),
    Column("value", Double, nullable=False),
    Column("logged_at", Double, nullable=False),
    Index("sweeplab_metrics_trial", "trial_id"),
    **_MYSQL_TEXT,
)

artifacts = Table(
    "sweeplab_artifacts",
    metadata,
    Column("trial_id", Id, primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("data", LongBlob, nullable=False),
    Column("created_at", Double, nullable=False),
    **_MYSQL_TEXT,
)

checkpoints = Table(
    "sweeplab_checkpoints",
    metadata,
    Column("trial_id", Id, primary_key=True),
    Column("data", LongBlob, nullable=False),
    Column("updated_at", Double, nullable=False),
    **_MYSQL_TEXT,
)

workers = Table(
    "sweeplab_workers",
    metadata,
    Column("owner", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("slots", Integer, nullable=False),
    Column("backend", String(64), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("heartbeat_at", Double, nullable=False),
    **_MYSQL_TEXT,
)

# -- SQLite only: the tally ---------------------------------------------------------
#: How many trials of each experiment are in each status, kept in the same transaction
#: as every change, so that ``status`` reads a few rows where it would count a million.
#: SQLite only: it has one writer at a time anyway, where on a server these rows would
#: make every worker's claim wait for every other's. ``add_trials`` counts the trials it
#: adds (a trigger on INSERT would cost 1.4 s a million); triggers move every later
#: change of status, whichever statement makes it.
sqlite_only = MetaData()

tally = Table(
    "sweeplab_tally",
    sqlite_only,
    Column("experiment_id", Integer, primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("n", Integer, nullable=False),
    sqlite_with_rowid=False,
)

_TALLY_TRIGGERS = (
    """CREATE TRIGGER sweeplab_tally_moved AFTER UPDATE OF status ON sweeplab_trials
    WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE sweeplab_tally SET n = n - 1
            WHERE experiment_id = OLD.experiment_id AND status = OLD.status;
        INSERT INTO sweeplab_tally (experiment_id, status, n)
            VALUES (NEW.experiment_id, NEW.status, 1)
            ON CONFLICT (experiment_id, status) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER sweeplab_tally_deleted AFTER DELETE ON sweeplab_trials BEGIN
        UPDATE sweeplab_tally SET n = n - 1
            WHERE experiment_id = OLD.experiment_id AND status = OLD.status;
    END""",
)


def create(conn: Connection, kind: str) -> None:
    """Make every table (and on SQLite the tally) in an empty database."""
    metadata.create_all(conn)
    if dialects.keeps_tally(kind):
        _create_tally(conn)


def upgrade(conn: Connection, kind: str, found: int, by: str) -> None:
    """Bring a store of schema ``found`` (older than SCHEMA_VERSION) up to date; ``by``
    names the sweeplab that did, for the error an older one then gets."""
    if found < 2 and dialects.keeps_tally(kind):
        _create_tally(conn)
    for key, value in (("schema_version", str(SCHEMA_VERSION)), ("upgraded_by", by)):
        conn.execute(dialects.upsert(kind, meta, ["key"], {"key": key, "value": value}))


def _create_tally(conn: Connection) -> None:
    sqlite_only.create_all(conn)
    _count_into_tally(conn, None)
    for trigger in _TALLY_TRIGGERS:
        conn.exec_driver_sql(trigger)


def recount_tally(conn: Connection, experiment_id: int) -> None:
    """Count an experiment's trials into the tally afresh (it drifted: ``store.counts``)."""
    conn.execute(delete(tally).where(tally.c.experiment_id == experiment_id))
    _count_into_tally(conn, experiment_id)


def _count_into_tally(conn: Connection, experiment_id: int | None) -> None:
    """Fill the tally from the trials: of one experiment, or of all (None)."""
    counted = select(trials.c.experiment_id, trials.c.status, func.count())
    if experiment_id is not None:
        counted = counted.where(trials.c.experiment_id == experiment_id)
    counted = counted.group_by(trials.c.experiment_id, trials.c.status)
    conn.execute(insert(tally).from_select(["experiment_id", "status", "n"], counted))
