"""What only the SQL store has to get right when it opens: refusing what is not a
sweeplab store without touching it, upgrading an older schema, refusing other schema
versions with the fix, not
creating a store when asked not to, and never showing a password.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import sweeplab as sl
from sweeplab.errors import NotAStore, SchemaVersionError, StoreError
from sweeplab.store.sql.schema import OLDEST_UPGRADABLE, SCHEMA_VERSION, meta
from tests.contract.values import (
    DONE,
    FAILED,
    LEASE_A,
    PENDING,
    RUNNING,
    claim,
    done,
    ids_of,
    new_trials,
)

PASSWORD = "s3cretpw"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` with its bytes: what "left untouched" is checked against."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def open_fails(url: str, error: type[Exception], **kwargs) -> Exception:
    with pytest.raises(error) as info:
        sl.open_store(url, **kwargs).close()  # closed, should it open after all
    return info.value


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each server."""
    return request.getfixturevalue(f"{request.param}_url")


# -- what is not a store is refused and left as it was ---------------------------------
@pytest.mark.parametrize(
    "content",
    [
        b"my thesis, chapter 1\n" * 500,
        bytes(range(256)) * 64,
        b"SQLite format 3\x00" + b"\xff" * 4080,  # an SQLite header, then garbage
    ],
    ids=["text", "binary", "bad-sqlite"],
)
@pytest.mark.parametrize("create", [True, False])
def test_a_file_that_is_not_an_sqlite_database_is_refused_untouched(tmp_path, content, create):
    path = tmp_path / "thesis.db"
    path.write_bytes(content)
    before = snapshot(tmp_path)

    error = open_fails(f"sqlite:///{path}", NotAStore, create=create)

    assert "thesis.db" in str(error)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_an_sqlite_database_of_something_else_is_refused_untouched(tmp_path, journal_mode):
    path = tmp_path / "app.db"
    # closing(): a sqlite3 connection's own `with` commits but does not close
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA journal_mode = {journal_mode}")
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO users (name) VALUES (?)", [("ada",), ("grace",)])
        db.commit()
    before = snapshot(tmp_path)
    assert list(before) == ["app.db"]

    error = open_fails(f"sqlite:///{path}", NotAStore)

    assert "app.db" in str(error)
    assert snapshot(tmp_path) == before


def test_a_folder_is_not_a_store(tmp_path):
    open_fails(f"sqlite:///{tmp_path}", NotAStore)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "new.db"
    path.touch()
    with sl.open_store(f"sqlite:///{path}") as store:
        assert store.experiments() == []
    with sl.open_store(f"sqlite:///{path}", create=False) as store:
        assert store.ensure_experiment("e", None, None).name == "e"


# -- schema versions -------------------------------------------------------------------
def _set_schema_version(url: str, version: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=version))
    engine.dispose()


def _schema_version(url: str, key: str = "schema_version") -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar_one()
    engine.dispose()
    return value


def test_a_store_from_a_newer_sweeplab_is_refused_with_the_fix(shared_store_url):
    with sl.open_store(shared_store_url) as store:
        store.ensure_experiment("kept", None, None)
    newer = str(SCHEMA_VERSION + 1)
    _set_schema_version(shared_store_url, newer)

    error = open_fails(shared_store_url, SchemaVersionError)

    assert "pip install -U sweeplab" in str(error)
    assert isinstance(error, StoreError)
    assert _schema_version(shared_store_url) == newer
    _set_schema_version(shared_store_url, str(SCHEMA_VERSION))
    with sl.open_store(shared_store_url) as store:
        assert [e.name for e in store.experiments()] == ["kept"]


def _make_schema_1(url: str) -> None:
    """Turn a store back into what sweeplab with schema 1 wrote: no SQLite tally."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for name in ("sweeplab_tally_moved", "sweeplab_tally_deleted"):
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
            conn.exec_driver_sql("DROP TABLE sweeplab_tally")
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="1"))
    engine.dispose()


def test_a_store_of_schema_1_is_upgraded_when_opened(shared_store_url):
    with sl.open_store(shared_store_url) as store:
        exp = store.ensure_experiment("kept", None, None).id
        store.add_trials(exp, new_trials(5))
        claim(store, limit=2)
    _make_schema_1(shared_store_url)

    with sl.open_store(shared_store_url, create=False) as store:
        assert store.counts(exp) == {PENDING: 3, RUNNING: 2, DONE: 0, FAILED: 0}
        store.add_trials(exp, new_trials(7))
        store.record(LEASE_A, [done(c) for c in ids_of(store, exp)[:2]])
        assert store.counts(exp) == {PENDING: 5, RUNNING: 0, DONE: 2, FAILED: 0}
    assert _schema_version(shared_store_url) == str(SCHEMA_VERSION)
    # an older sweeplab refused by the upgraded store is told who upgraded it
    assert _schema_version(shared_store_url, "upgraded_by") == f"sweeplab {sl.__version__}"


def test_a_store_older_than_any_upgrade_is_refused_with_the_fix(shared_store_url):
    sl.open_store(shared_store_url).close()
    _set_schema_version(shared_store_url, str(OLDEST_UPGRADABLE - 1))

    error = open_fails(shared_store_url, SchemaVersionError, create=False)

    assert f"schema {OLDEST_UPGRADABLE - 1}" in str(error)
    assert "--store" in str(error)
    assert _schema_version(shared_store_url) == str(OLDEST_UPGRADABLE - 1)


# -- SQLite: several stores on one file in one process ---------------------------------------
_CLAIM_ONE = """
import sys
import sweeplab as sl
from sweeplab.store.base import Lease
with sl.open_store(sys.argv[1], create=False) as store:
    store.claim(Lease.for_this_process(), 1, 60, 3, [store.experiment("kept").id])
"""


def test_a_second_store_on_the_same_file_leaves_the_first_one_current(sqlite_url):
    # Opening a store checks the file; had that opened it with Python, closing it would
    # drop this process's SQLite locks: the next process to close its last connection
    # would delete the WAL under the first store, which then reads a stale database.
    first = sl.open_store(sqlite_url)
    exp = first.ensure_experiment("kept", None, None).id
    first.add_trials(exp, new_trials(3))
    assert first.counts(exp)[PENDING] == 3  # its connection stays open in the pool
    sl.open_store(sqlite_url).close()

    for claimed in (1, 2):  # each process opens the store, claims a trial and ends
        subprocess.run([sys.executable, "-c", _CLAIM_ONE, sqlite_url], check=True)
        assert first.counts(exp) == {PENDING: 3 - claimed, RUNNING: claimed, DONE: 0, FAILED: 0}
    first.close()


# -- the SQLite tally ---------------------------------------------------------------------
def _tally(url: str, sql: str | None = None) -> dict[str, int]:
    """Run ``sql`` on the store (around sweeplab), then read its tally as status -> n."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if sql:
            conn.exec_driver_sql(sql)
        rows = conn.exec_driver_sql("SELECT status, n FROM sweeplab_tally").all()
    engine.dispose()
    return {status: n for status, n in rows if n}


def test_a_trial_deleted_around_sweeplab_leaves_the_tally(sqlite_url):
    with sl.open_store(sqlite_url) as store:
        exp = store.ensure_experiment("kept", None, None).id
        store.add_trials(exp, new_trials(5))
        claim(store, limit=2)

    _tally(
        sqlite_url,
        "DELETE FROM sweeplab_trials WHERE status = 'pending' AND id = "
        "(SELECT max(id) FROM sweeplab_trials)",
    )

    with sl.open_store(sqlite_url) as store:
        assert store.counts(exp) == {PENDING: 2, RUNNING: 2, DONE: 0, FAILED: 0}


@pytest.mark.parametrize(
    "drift",
    [
        # failed trials that are not there
        "INSERT INTO sweeplab_tally SELECT id, 'failed', 4 FROM sweeplab_experiments",
        "DELETE FROM sweeplab_tally WHERE status = 'done'",  # trials never counted
        "UPDATE sweeplab_tally SET n = -1 WHERE status = 'running'",
    ],
)
def test_a_tally_that_drifted_is_counted_afresh(sqlite_url, drift):
    # what a process of an older sweeplab, writing while the store was upgraded, can leave;
    # the check is where it decides: a status tallied empty has no trial, and back
    with sl.open_store(sqlite_url) as store:
        exp = store.ensure_experiment("kept", None, None).id
        store.add_trials(exp, new_trials(10))
        claim(store, limit=3)
        store.record(LEASE_A, [done(c) for c in ids_of(store, exp)[:2]])
    _tally(sqlite_url, drift)

    with sl.open_store(sqlite_url) as store:
        assert store.counts(exp) == {PENDING: 7, RUNNING: 1, DONE: 2, FAILED: 0}
    assert _tally(sqlite_url) == {"pending": 7, "running": 1, "done": 2}


def _square(x: int) -> dict[str, int]:
    return {"y": x * x}


@pytest.mark.timeout(60)
def test_a_run_ends_although_the_tally_counts_trials_that_are_not_there(sqlite_url):
    exp = sl.Experiment(_square, store=sqlite_url)
    exp.add(sl.grid(x=range(6)))
    exp.run()
    _tally(sqlite_url, "UPDATE sweeplab_tally SET n = n + 5 WHERE status = 'pending'")

    report = exp.run()  # trusting the tally, it would wait for five trials forever

    assert report.done == 0
    assert exp.status() == {"pending": 0, "running": 0, "done": 6, "failed": 0}


# -- create=False ----------------------------------------------------------------------
def test_create_false_on_a_missing_file_creates_nothing(tmp_path):
    path = tmp_path / "missing.db"

    error = open_fails(f"sqlite:///{path}", StoreError, create=False)

    assert "missing.db" in str(error)
    assert list(tmp_path.iterdir()) == []


def test_create_false_on_an_empty_server_database_creates_nothing(server_url):
    open_fails(server_url, StoreError, create=False)

    engine = sa.create_engine(server_url)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
    engine.dispose()
    assert not [t for t in tables if t.startswith("sweeplab_")]


def test_a_store_in_a_missing_folder_is_refused(tmp_path):
    error = open_fails(f"sqlite:///{tmp_path / 'no' / 'such' / 'store.db'}", StoreError)
    assert "does not exist" in str(error)
    assert list(tmp_path.iterdir()) == []


# -- passwords -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test",
        f"mysql://root:{PASSWORD}@127.0.0.1:1/test",
    ],
    ids=["postgres", "mysql"],
)
def test_a_server_that_cannot_be_reached_is_named_without_its_password(url, monkeypatch):
    monkeypatch.delenv("SWEEPLAB_DB_PASSWORD", raising=False)

    error = open_fails(url, StoreError)

    assert "127.0.0.1:1" in str(error)
    assert PASSWORD not in str(error)
    assert "***" in str(error)
    # the CLI prints the chain of causes too
    cause = error.__cause__
    while cause is not None:
        assert PASSWORD not in str(cause)
        cause = cause.__cause__


def test_server_stores_record_a_batch_in_one_statement(server_url):
    # PostgreSQL and MariaDB 10.6+ (what CI runs) take a batch of outcomes as one JSON text
    from sweeplab.store.sql import dialects

    with sl.open_store(server_url) as store:
        store.experiments()  # connected: the server's version is known
        assert dialects.updates_from_json(store.kind, store.engine.dialect)


# -- each database's own table options, given where its tables are made ---------------
def test_sqlite_tables_get_their_partial_indexes_and_a_tally_without_rowid(sqlite_url):
    sl.open_store(sqlite_url).close()
    path = sa.make_url(sqlite_url).database
    with contextlib.closing(sqlite3.connect(path)) as conn:
        ddl = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    assert ddl["sweeplab_trials_lease"].endswith("WHERE lease_owner IS NOT NULL")
    assert ddl["sweeplab_trials_finished"].endswith("WHERE finished_at IS NOT NULL")
    assert ddl["sweeplab_tally"].rstrip().endswith("WITHOUT ROWID")


def test_mysql_tables_compare_text_exactly_and_hold_long_values(mysql_url):
    sl.open_store(mysql_url).close()
    engine = sa.create_engine(mysql_url)
    try:
        with engine.connect() as conn:
            show = {
                table: conn.exec_driver_sql(f"SHOW CREATE TABLE {table}").one()[1]
                for table in ("sweeplab_meta", "sweeplab_trials", "sweeplab_checkpoints")
            }
    finally:
        engine.dispose()
    assert all("COLLATE=utf8mb4_bin" in ddl for ddl in show.values())
    assert "`params` longtext NOT NULL" in show["sweeplab_trials"]
    assert "`data` longblob NOT NULL" in show["sweeplab_checkpoints"]


OTHER_DIALECTS = """
import sys
import sweeplab as sl
with sl.open_store(sys.argv[1]) as store:
    store.experiments()
kinds = ("mysql", "postgresql", "sqlite")
print(sorted(k for k in kinds if f"sqlalchemy.dialects.{k}" in sys.modules))
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mysql"])
def test_a_store_loads_no_other_databases_dialect(kind, request):
    # each costs a process that opens a store its import: 10 to 20 ms of a worker's start
    url = request.getfixturevalue(f"{kind}_url")
    loaded = subprocess.run(
        [sys.executable, "-c", OTHER_DIALECTS, url], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == str([{"postgres": "postgresql"}.get(kind, kind)])
