"""W4's scratch databases on the PostgreSQL server the benchmark is given, through
SQLAlchemy (the harness's environment has it, and whichever driver sweeplab installs)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa


def unavailable(admin: str) -> str | None:
    """Why the server cannot be used, or None."""
    try:
        engine = sa.create_engine(admin, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except ImportError as exc:
        return f"no PostgreSQL driver ({exc}): pip install -e '.[postgres]'"
    except sa.exc.SQLAlchemyError as exc:
        return f"no PostgreSQL at {admin}: {str(exc.orig or exc).strip().splitlines()[0]}"
    return None


def recreate(admin: str, database: str) -> str:
    """A new, empty ``database`` (dropped first if there); its URL."""
    drop(admin, database)
    _run(admin, f"CREATE DATABASE {_quoted(admin, database)}")
    return with_database(admin, database)


def drop(admin: str, database: str) -> None:
    _run(admin, f"DROP DATABASE IF EXISTS {_quoted(admin, database)} WITH (FORCE)")


def done_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM sweeplab_trials WHERE status = 'done'"
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _quoted(admin: str, database: str) -> str:
    return sa.create_engine(admin).dialect.identifier_preparer.quote(database)


def _run(admin: str, statement: str) -> None:
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()
