"""Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB, in one place.

- the driver a plain ``postgresql://`` or ``mysql://`` URL gets (psycopg2, PyMySQL): of
  the PostgreSQL drivers, psycopg2 imports fastest (about 40 ms of CPU against psycopg 3's
  150 here), which every worker pays; ``postgresql+psycopg://`` picks psycopg 3;
- SQLite's connection set-up: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for writes so
  that two processes never both read-then-write the same rows;
- the database clock as epoch seconds;
- which database keeps a tally of trials per status (SQLite);
- "insert unless present";
- how a batch is claimed: ``UPDATE ... RETURNING`` on SQLite and PostgreSQL (with
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), ``SELECT ... FOR UPDATE SKIP LOCKED``
  then ``UPDATE`` on MySQL/MariaDB, which have no ``UPDATE ... RETURNING``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, literal_column, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.sql.expression import ColumnElement, Insert

from sweeplab.errors import StoreError

DRIVERS = {
    "postgresql": ("postgresql+psycopg2", "psycopg2", "postgres"),
    "postgres": ("postgresql+psycopg2", "psycopg2", "postgres"),
    "mysql": ("mysql+pymysql", "pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "pymysql", "mysql"),
}

SQLITE_BUSY_TIMEOUT_S = 60
SQLITE_CACHE_MIB = 64


def normalize_url(url: str | URL) -> URL:
    """Parse a store URL and give plain server URLs their default driver."""
    parsed = make_url(url)
    if parsed.drivername in DRIVERS:
        parsed = parsed.set(drivername=DRIVERS[parsed.drivername][0])
    return parsed


def family(url: URL) -> str:
    """'sqlite', 'postgresql' or 'mysql' (MariaDB included)."""
    backend = url.get_backend_name()
    if backend == "mariadb":
        return "mysql"
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise StoreError(
            f"unsupported store {url.render_as_string(hide_password=True)}: "
            "use sqlite:///FILE, postgresql://... or mysql://..."
        )
    return backend


def make_engine(url: URL, connect_args: dict[str, Any] | None = None) -> Engine:
    kind = family(url)
    if kind == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _set_up_sqlite(engine)
        return engine
    _require_driver(url)
    options: dict[str, Any] = {}
    if url.drivername == "postgresql+psycopg2":
        options["use_native_hstore"] = False  # no hstore here: no catalog query to find it
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        connect_args=connect_args or {},
        **options,
    )


def _require_driver(url: URL) -> None:
    for plain, (_, module, extra) in DRIVERS.items():
        if url.drivername.startswith(plain) or url.get_backend_name() == plain:
            try:
                __import__(module)
            except ImportError as exc:
                raise StoreError(
                    f"the {url.get_backend_name()} store needs {module}: "
                    f'pip install "sweeplab[{extra}]"'
                ) from exc
            return


def _set_up_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling begins lazily and never as IMMEDIATE; take it over.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives any crash of the process, at ~20 us a commit
        cursor.execute("PRAGMA synchronous = NORMAL")
        # pages of the trials' indexes stay in memory while a million trials are added, where
        # the default 2 MiB sends each insert into the point-key index to the file
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_MIB * 1024}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def now(kind: str) -> ColumnElement[float]:
    """The database's clock in epoch seconds, so every host agrees on lease expiry."""
    if kind == "postgresql":
        return func.extract("epoch", func.clock_timestamp())
    if kind == "mysql":
        return func.unix_timestamp(func.now(6))
    return literal_column("((julianday('now') - 2440587.5) * 86400.0)")


def insert_ignore(kind: str, table: Any) -> Insert:
    """INSERT that skips rows whose unique key is already there."""
    if kind == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(table).on_conflict_do_nothing()
    if kind == "mysql":
        from sqlalchemy import insert

        return insert(table).prefix_with("IGNORE")
    from sqlalchemy.dialects.sqlite import insert

    return insert(table).on_conflict_do_nothing()


def upsert(kind: str, table: Any, keys: list[str], values: dict[str, Any]) -> Any:
    """INSERT, or UPDATE the given columns if the primary key is taken."""
    update = {k: v for k, v in values.items() if k not in keys}
    if kind == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        stmt = insert(table).values(**values)
        return stmt.on_conflict_do_update(index_elements=keys, set_=update)
    if kind == "mysql":
        from sqlalchemy.dialects.mysql import insert

        stmt = insert(table).values(**values)
        return stmt.on_duplicate_key_update(**update)
    from sqlalchemy.dialects.sqlite import insert

    stmt = insert(table).values(**values)
    return stmt.on_conflict_do_update(index_elements=keys, set_=update)


def inserts_from_json(kind: str) -> bool:
    """A chunk of trials is one INSERT ... SELECT from a JSON text: on PostgreSQL, and on
    SQLite 3.38+, which always has json_each."""
    return kind == "postgresql" or (kind == "sqlite" and sqlite3.sqlite_version_info >= (3, 38))


def driver_executes_many_at_once(dialect: Any) -> bool:
    """Whether the driver's own executemany sends many rows at once: SQLite's (in-process),
    psycopg 3's (pipelined) and PyMySQL's (one multi-row INSERT); psycopg2's makes a round
    trip a row."""
    return dialect.driver != "psycopg2"


def keeps_tally(kind: str) -> bool:
    """SQLite keeps each experiment's counts per status (``schema.tally`` says why)."""
    return kind == "sqlite"


def updates_from_json(kind: str, dialect: Any) -> bool:
    """Whether the server updates a batch of rows from one JSON text: PostgreSQL
    (``json_to_recordset``) and MariaDB 10.6+ (``JSON_TABLE``). MySQL 8 has JSON_TABLE
    too, but is not tested here; it keeps executemany. Known once connected."""
    if kind == "postgresql":
        return True
    version = getattr(dialect, "server_version_info", None) or ()
    return kind == "mysql" and getattr(dialect, "is_mariadb", False) and version >= (10, 6)


def claim_supports_returning(kind: str) -> bool:
    return kind in ("sqlite", "postgresql")


def skip_locked(kind: str) -> bool:
    """SQLite has one writer at a time and needs no row locks."""
    return kind != "sqlite"


def schema_lock(kind: str, connection: Any) -> None:
    """Serialise schema creation between processes that open a new store at once."""
    if kind == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(735120419)"))
    elif kind == "mysql":
        connection.execute(text("SELECT GET_LOCK('sweeplab_schema', 60)"))


def schema_unlock(kind: str, connection: Any) -> None:
    if kind == "mysql":
        connection.execute(text("SELECT RELEASE_LOCK('sweeplab_schema')"))
