"""The worker's PostgreSQL store runs SQL compiled ahead of time: it must be what SQLAlchemy
compiles now, and it must find the server as SQLAlchemy would from the same URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from sweeplab.store.sql import compile_ahead, postgres_sql, statements
from sweeplab.store.sql.postgres_direct import _Target
from sweeplab.store.sql.schema import SCHEMA_VERSION
from sweeplab.trial import TrialStatus


def test_the_compiled_sql_is_what_sqlalchemy_compiles_from_statements_py():
    # on failure: python -m sweeplab.store.sql.compile_ahead
    assert Path(postgres_sql.__file__).read_text() == compile_ahead.render()
    assert postgres_sql.SCHEMA_VERSION == SCHEMA_VERSION
    # counts and statuses_present answer in this order, which the worker store reads
    assert tuple(s.value for s in TrialStatus) == statements.STATUSES


def test_a_statement_that_needs_sqlalchemy_at_run_time_is_refused():
    from sweeplab.store.sql import schema

    # a type whose values SQLAlchemy processes on the way in (here: a PickleType)
    pickled = sa.Table("t", sa.MetaData(), sa.Column("p", sa.PickleType))
    with pytest.raises(ValueError, match="cannot run without SQLAlchemy"):
        compile_ahead.compiled(pickled.insert().values(p=sa.bindparam("b_p")))
    # what the worker does run compiles to plain binds, lists and JSON only
    for sql, constants, expanding, as_json in map(
        compile_ahead.compiled, compile_ahead.hot_statements().values()
    ):
        assert "__[POSTCOMPILE" not in sql and None not in constants.values()
        assert all(f"%({name})s" in sql for name in (*expanding, *as_json))
    assert schema.trials.name in postgres_sql.STATEMENTS["claim"][0]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg2://me:p%40ss%3Aw%2Ford@db.example.org/results",
        "postgres://Me@DB.Example.org:6543/My%20Db?sslmode=require&application_name=a+b",
        "postgresql://u:pw@[::1]:5432/d",
        "postgresql:///local_db?host=/var/run/postgresql",
        "postgresql://localhost",
    ],
)
def test_a_url_means_what_it_means_to_sqlalchemy(url, monkeypatch):
    monkeypatch.delenv("SWEEPLAB_DB_PASSWORD", raising=False)
    monkeypatch.setenv("SWEEPLAB_CREDENTIALS", "")
    monkeypatch.setenv("HOME", "/nonexistent")
    parsed = sa.make_url(url).set(drivername="postgresql+psycopg2")
    target = _Target.parse(url)
    assert target is not None
    assert target.render(hide_password=True) == parsed.render_as_string(hide_password=True)
    assert target.render(hide_password=False) == parsed.render_as_string(hide_password=False)
    # what psycopg2.connect is given: what SQLAlchemy's psycopg2 dialect gives it
    _, expected = parsed.get_dialect()().create_connect_args(parsed)
    assert target.connect_args() == {k: v for k, v in expected.items() if v is not None}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u@h/d",  # psycopg 3
        "mysql://root@127.0.0.1/test",
        "sqlite:///store.db",
        "postgresql://u@h1,h2/d",  # two hosts
        "postgresql://u@h/d?host=a&host=b",
        "postgresql://u@h:notaport/d",
        "postgresql://u:pa#ss@h/d",  # raw characters that the two parsers split apart
        "postgresql://u:pa?ss@h/d",
        "postgresql://u:p@ss@h/d",
        "postgresql://u:pa/ss@h/d",
    ],
)
def test_what_the_direct_store_cannot_speak_for_is_left_to_sqlalchemy(url):
    assert _Target.parse(url) is None


def test_credentials_are_filled_in_as_for_the_full_store(monkeypatch, tmp_path):
    monkeypatch.setenv("SWEEPLAB_DB_PASSWORD", "from-env")
    target = _Target.parse("postgresql://u@h/d")
    assert target.connect_args()["password"] == "from-env"
    assert "from-env" not in target.render(hide_password=True)
    monkeypatch.delenv("SWEEPLAB_DB_PASSWORD")
    ini = tmp_path / "credentials.ini"
    ini.write_text("[db.example.org]\nuser = ann\npassword = from-file\nport = 6543\n")
    monkeypatch.setenv("SWEEPLAB_CREDENTIALS", str(ini))
    args = _Target.parse("postgresql://db.example.org/d").connect_args()
    assert (args["user"], args["password"], args["port"]) == ("ann", "from-file", 6543)
