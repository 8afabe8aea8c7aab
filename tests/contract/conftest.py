"""Fixtures shared by the store contract suite.

``store_url`` is overridden here so that a server store is emptied between tests
(DELETE from each table) instead of having its tables dropped and made again: on
MariaDB the DDL alone costs most of a second a test. Each test still opens the store
afresh, and the schema is made by the store itself the first time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

import sweeplab as sl
from sweeplab.store.base import BaseStore
from tests.conftest import SERVERS, unavailable


@pytest.fixture(scope="session")
def _empty_server_store(server_database: dict[str, str]) -> Iterator[Callable[[str], str]]:
    from sweeplab.store.sql.schema import meta, metadata

    engines: dict[str, sa.Engine] = {}

    def empty(kind: str) -> str:
        if kind not in server_database:
            unavailable(f"{kind} at {SERVERS[kind]}")
        url = server_database[kind]
        engine = engines.setdefault(kind, sa.create_engine(url))
        with engine.begin() as conn:
            there = set(sa.inspect(conn).get_table_names())
            for table in reversed(metadata.sorted_tables):
                if table.name in there and table is not meta:
                    conn.execute(table.delete())
        return url

    yield empty
    for engine in engines.values():
        engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgres", "psycopg3", "worker-postgres", "mysql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every kind of store, in turn, empty. PostgreSQL three times: through psycopg2, which
    a plain ``postgresql://`` gets; psycopg 3 (``postgresql+psycopg://``); and the store a
    worker opens (``store`` below), which runs its hot path without SQLAlchemy."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    if request.param == "psycopg3":
        url = sa.make_url(request.getfixturevalue("_empty_server_store")("postgres"))
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kind = "postgres" if request.param == "worker-postgres" else request.param
    return request.getfixturevalue("_empty_server_store")(kind)


@pytest.fixture
def store(store_url: str, request: pytest.FixtureRequest) -> Iterator[BaseStore]:
    if request.node.callspec.params.get("store_url") != "worker-postgres":
        opened = sl.open_store(store_url)
    else:
        from sweeplab.store.sql.postgres_direct import DirectPostgresStore

        sl.open_store(store_url).close()  # a worker opens a store that is there
        opened = sl.open_store(store_url, for_worker=True)
        assert isinstance(opened, DirectPostgresStore)
    yield opened
    opened.close()


@pytest.fixture
def exp(store: BaseStore) -> int:
    """The id of an empty experiment in the store under test."""
    return store.ensure_experiment("exp", "study:simulate", None).id


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the SQL store insert in chunks of 3 rows, so that a failure half-way
    through add_trials comes after some rows were already written in its transaction."""
    from sweeplab.store.sql import store as sql_store

    monkeypatch.setattr(sql_store, "ADD_CHUNK", 3)
