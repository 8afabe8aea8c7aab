"""The one schema, portable across SQLite, PostgreSQL and MySQL/MariaDB.

Bump SCHEMA_VERSION whenever a table changes, and teach ``upgrade`` the step: an older
store is brought up to date when it is opened, a newer one is refused with an error that
names the fix.

Version 2 added the SQLite tally (below).
"""

from __future__ import annotations

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

from sweeplab.store.sql import dialects

SCHEMA_VERSION = 2
#: the oldest schema ``upgrade`` brings up to date
OLDEST_UPGRADABLE = 1

# Options of one database (``mysql_charset=``, ``sqlite_where=``) are given where that
# database's tables are made (``create``), not in the declarations below: there,
# SQLAlchemy would import the dialect of each to check them, in every process that opens
# any store (30 ms of a worker's start, which eight workers on two cores pay eight times).

# SQLite only autoincrements an INTEGER PRIMARY KEY. MySQL's TEXT and BLOB stop at 64 KiB;
# given a length, it makes the smallest type that holds it: LONGTEXT and LONGBLOB.
Id = BigInteger().with_variant(Integer, "sqlite")
_LONGEST = 2**32 - 1
LongText = Text().with_variant(Text(_LONGEST), "mysql", "mariadb")
LongBlob = LargeBinary().with_variant(LargeBinary(_LONGEST), "mysql", "mariadb")


metadata = MetaData()

meta = Table(
    "sweeplab_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

experiments = Table(
    "sweeplab_experiments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("target", Text),
    Column("function_pickle", LongBlob),
    Column("created_at", Double, nullable=False),
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
    # partial on SQLite (``_options_of``)
    Index("sweeplab_trials_lease", "lease_owner"),
    # status shows the rate of trials finished lately
    Index("sweeplab_trials_finished", "experiment_id", "finished_at"),
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
)

artifacts = Table(
    "sweeplab_artifacts",
    metadata,
    Column("trial_id", Id, primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("data", LongBlob, nullable=False),
    Column("created_at", Double, nullable=False),
)

checkpoints = Table(
    "sweeplab_checkpoints",
    metadata,
    Column("trial_id", Id, primary_key=True),
    Column("data", LongBlob, nullable=False),
    Column("updated_at", Double, nullable=False),
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
    _options_of(kind)
    metadata.create_all(conn)
    if dialects.keeps_tally(kind):
        _create_tally(conn)


def _options_of(kind: str) -> None:
    """Give the tables the options of the database ``kind`` before they are made there."""
    if kind == "mysql":
        # MySQL/MariaDB compare text with the database's default collation, usually
        # case- and accent-insensitive (utf8mb4_general_ci): "Sweep" and "sweep" would be
        # one experiment, "Model.pt" and "model.pt" one artifact. Binary collation compares
        # text exactly, as SQLite and PostgreSQL do, and utf8mb4 holds any text whatever
        # the server's default charset. (Trailing spaces still compare equal: PAD SPACE.)
        for table in metadata.tables.values():
            for dialect in ("mysql", "mariadb"):
                table.dialect_kwargs[f"{dialect}_charset"] = "utf8mb4"
                table.dialect_kwargs[f"{dialect}_collate"] = "utf8mb4_bin"
    if kind == "sqlite":
        # partial: a pending trial has neither a lease nor a finish, so adding a million
        # trials writes no entry in either index
        for index in trials.indexes:
            if index.name in ("sweeplab_trials_lease", "sweeplab_trials_finished"):
                last = list(index.columns)[-1].name
                index.dialect_kwargs["sqlite_where"] = text(f"{last} IS NOT NULL")
        tally.dialect_kwargs["sqlite_with_rowid"] = False


def upgrade(conn: Connection, kind: str, found: int, by: str) -> None:
    """Bring a store of schema ``found`` (older than SCHEMA_VERSION) up to date; ``by``
    names the sweeplab that did, for the error an older one then gets."""
    if found < 2 and dialects.keeps_tally(kind):
        _create_tally(conn)
    for key, value in (("schema_version", str(SCHEMA_VERSION)), ("upgraded_by", by)):
        conn.execute(dialects.upsert(kind, meta, ["key"], {"key": key, "value": value}))


def _create_tally(conn: Connection) -> None:
    _options_of("sqlite")
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
