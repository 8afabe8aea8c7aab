"""The store a worker opens on PostgreSQL (``postgres_direct``): what the contract suite's
``worker-postgres`` runs cannot show. It loads no SQLAlchemy, falls back to the full store
where it cannot speak for it, replaces connections a server restart broke without a
warning, keeps a forked child off the parent's connections, and never shows a password.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

import sweeplab as sl
from sweeplab.errors import SchemaVersionError, StoreError
from sweeplab.store.sql.postgres_direct import DirectPostgresStore
from sweeplab.store.sql.schema import SCHEMA_VERSION, meta
from sweeplab.store.sql.store import SQLStore
from tests.contract.values import DONE, LEASE_A, PENDING, claim, claimed_ids, done, new_trials


def _with_trials(url: str, n: int) -> int:
    with sl.open_store(url) as store:
        experiment = store.ensure_experiment("exp", "study:simulate", None).id
        store.add_trials(experiment, new_trials(n))
    return experiment


def test_a_worker_on_postgres_loads_no_sqlalchemy(postgres_url, tmp_path):
    (tmp_path / "study.py").write_text("def simulate(a):\n    return {'y': 2 * a}\n")
    add = [sys.executable, "-m", "sweeplab", "add", "study.py:simulate", "a=range(0,30)"]
    subprocess.run([*add, "--store", postgres_url], cwd=tmp_path, check=True, timeout=120)
    worker = [sys.executable, "-X", "importtime", "-m", "sweeplab", "worker", "-j", "2"]
    ran = subprocess.run(
        [*worker, "--store", postgres_url, "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "ran 30 trials" in ran.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in ran.stderr.splitlines()]
    assert "psycopg2" in imported and "sweeplab.store.sql.postgres_direct" in imported
    assert not [m for m in imported if m.startswith("sqlalchemy")]
    with sl.open_store(postgres_url) as store:
        trials = store.trials(store.experiment("simulate").id)
    assert sorted(t.result["y"] for t in trials) == [2 * a for a in range(30)]


def test_what_the_hot_path_does_not_cover_goes_to_the_full_store(postgres_url):
    experiment = _with_trials(postgres_url, 3)
    with sl.open_store(postgres_url, for_worker=True) as store:
        assert isinstance(store, DirectPostgresStore)
        [first, *_] = claimed_ids(claim(store, limit=3))
        store.save_checkpoint(first, LEASE_A.owner, b"state")
        assert store.load_checkpoint(first) == b"state"
        assert store.record(LEASE_A, [done(first, metrics=[(0, "loss", 0.5, 1.0)])]) == 1
        assert [m.value for m in store.metrics(experiment)] == [0.5]
        assert store.counts(experiment)[DONE] == 1


@pytest.mark.parametrize(
    "variant",
    [
        lambda url: url.set(drivername="postgresql+psycopg"),  # another driver
        lambda url: url.update_query_dict({"host": ["127.0.0.1", "127.0.0.1"]}),  # two hosts
    ],
    ids=["psycopg3", "two-hosts"],
)
def test_what_it_cannot_speak_for_opens_the_full_store(postgres_url, variant):
    _with_trials(postgres_url, 1)
    url = variant(sa.make_url(postgres_url)).render_as_string(hide_password=False)
    with sl.open_store(url, for_worker=True) as store:
        assert type(store) is SQLStore
        assert store.counts(store.experiment("exp").id)[PENDING] == 1


def test_sqlite_and_mysql_workers_open_the_full_store(tmp_path, mysql_url):
    for url in (f"sqlite:///{tmp_path / 'store.db'}", mysql_url):
        _with_trials(url, 1)
        with sl.open_store(url, for_worker=True) as store:
            assert type(store) is SQLStore


def test_an_older_schema_is_upgraded_and_a_newer_refused_as_the_full_store_does(postgres_url):
    _with_trials(postgres_url, 1)
    engine = sa.create_engine(postgres_url)
    set_version = meta.update().where(meta.c.key == "schema_version")
    try:
        with engine.begin() as conn:
            conn.execute(set_version.values(value=str(SCHEMA_VERSION + 1)))
        with pytest.raises(SchemaVersionError, match="pip install -U sweeplab"):
            sl.open_store(postgres_url, for_worker=True)
        with engine.begin() as conn:
            conn.execute(set_version.values(value=str(SCHEMA_VERSION - 1)))
        with sl.open_store(postgres_url, for_worker=True) as store:
            assert type(store) is SQLStore  # which upgraded it
        with sl.open_store(postgres_url, for_worker=True) as store:
            assert isinstance(store, DirectPostgresStore)
    finally:
        engine.dispose()


def test_no_store_there_is_refused_as_the_full_store_refuses_it(postgres_url):
    with pytest.raises(StoreError) as direct:
        sl.open_store(postgres_url, for_worker=True)
    with pytest.raises(StoreError) as full:
        sl.open_store(postgres_url, create=False)
    assert str(direct.value) == str(full.value)
    assert "no sweeplab store at" in str(direct.value)


def test_connections_a_server_restart_broke_are_replaced_without_a_warning(postgres_url, caplog):
    experiment = _with_trials(postgres_url, 2)
    with sl.open_store(postgres_url, for_worker=True) as store:
        assert isinstance(store, DirectPostgresStore)
        assert store.counts(experiment)[PENDING] == 2  # a connection is kept
        backends = _terminate_connections(postgres_url)
        assert backends >= 1
        with caplog.at_level(logging.WARNING, logger="sweeplab.store"):
            assert len(claim(store, limit=2)) == 2
        assert not caplog.records


def _terminate_connections(url: str) -> int:
    """What a restart does to the store's connections: the server ends them."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    database = sa.make_url(url).database
    with engine.begin() as conn:
        ended = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": database},
        ).scalar_one()
    engine.dispose()
    return ended


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_never_uses_the_parents_connections(postgres_url):
    experiment = _with_trials(postgres_url, 2)
    with sl.open_store(postgres_url, for_worker=True) as store:
        store.counts(experiment)  # the parent keeps a connection
        [kept] = store._idle
        pid = os.fork()
        if pid == 0:  # the child: a connection of its own, the parent's left alone
            code = 1
            try:
                pending = store.counts(experiment)[PENDING]
                code = 0 if pending == 2 and not kept.closed and store._idle != [kept] else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store._idle == [kept]
        with kept.cursor() as cur:  # the server still has the parent's session
            cur.execute("SELECT 1")
        kept.rollback()
        assert len(claim(store, limit=2)) == 2  # still the parent's, still working


def test_a_password_never_shows(postgres_url, tmp_path):
    password = "s3cret-pw"
    url = sa.make_url(postgres_url).set(password=password, database="no_such_database_here")
    with pytest.raises(StoreError) as info:
        sl.open_store(url.render_as_string(hide_password=False), for_worker=True)
    assert password not in str(info.value)
    assert "no_such_database_here" in str(info.value) and "***" in str(info.value)
