"""The one schema, portable across SQLite, PostgreSQL and MySQL/MariaDB.

Bump SCHEMA_VERSION whenever a table changes; a store written by another version is
refused on open with an error that names the fix.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
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
    text,
)
from sqlalchemy.dialects import mysql

SCHEMA_VERSION = 1

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
