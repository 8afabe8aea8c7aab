"""Shared fixtures: stores of every kind, each test on a clean one.

PostgreSQL and MariaDB come from SWEEPLAB_TEST_POSTGRES / SWEEPLAB_TEST_MYSQL (defaults:
the loopback servers that scripts/services.sh starts). Tests get their own database on
each server, created for the session and dropped after it. A server that cannot be
reached skips its tests on a laptop, and fails them under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import sweeplab as sl

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

SERVERS = {
    "postgres": os.environ.get(
        "SWEEPLAB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get("SWEEPLAB_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test"),
}


def unavailable(what: str) -> None:
    """Skip on a laptop, fail in CI: a missing service is never a silent skip there."""
    if IN_CI:
        pytest.fail(f"{what} is not available, and CI=true requires it")
    pytest.skip(f"{what} is not available")


def _admin_url(kind: str) -> sa.URL:
    from sweeplab.store.sql.dialects import normalize_url

    return normalize_url(SERVERS[kind])


@pytest.fixture(scope="session")
def server_database() -> Iterator[dict[str, str]]:
    """One fresh database per server for this test session: {kind: url}."""
    made: dict[str, str] = {}
    name = f"sweeplab_test_{uuid.uuid4().hex[:8]}"
    engines = {}
    for kind in SERVERS:
        url = _admin_url(kind)
        try:
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
            with engine.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
        except Exception:
            continue
        engines[kind] = engine
        made[kind] = url.set(database=name).render_as_string(hide_password=False)
    yield made
    for kind, engine in engines.items():
        engine.dispose()  # a test may have restarted the server under the pooled connection
        with engine.connect() as conn:
            if kind == "postgres":
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    )
                )
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


def _clean(url: str) -> None:
    from sweeplab.store.sql.schema import metadata

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
    engine.dispose()


@pytest.fixture
def postgres_url(server_database: dict[str, str]) -> str:
    if "postgres" not in server_database:
        unavailable(f"PostgreSQL at {SERVERS['postgres']}")
    _clean(server_database["postgres"])
    return server_database["postgres"]


@pytest.fixture
def mysql_url(server_database: dict[str, str]) -> str:
    if "mysql" not in server_database:
        unavailable(f"MariaDB/MySQL at {SERVERS['mysql']}")
    _clean(server_database["mysql"])
    return server_database["mysql"]


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["memory", "sqlite", "postgres", "mysql"])
def store_url(request) -> str:
    """Every kind of store, in turn."""
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def shared_store_url(request) -> str:
    """Every store that several processes can share."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def store(store_url) -> Iterator[sl.store.BaseStore]:
    s = sl.open_store(store_url)
    yield s
    s.close()
