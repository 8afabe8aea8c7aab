"""``sl.overview``: what `sweeplab status` shows. On an SQLite file it is read with sqlite3
alone (no SQLAlchemy, no counting); that reading must agree with the store contract's."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

import sweeplab as sl
from sweeplab.errors import NoStore, StoreError, UnknownExperiment
from sweeplab.store import overview as ov
from sweeplab.store.sql import sqlite_file
from sweeplab.store.sql.schema import SCHEMA_VERSION
from sweeplab.trial import Outcome, TrialStatus
from tests.contract.values import LEASE_A, LEASE_B, claim, done, new_trials


def _busy_store(url: str) -> None:
    """Two experiments with trials in every status, finishes lately, and a worker."""
    with sl.open_store(url) as store:
        a = store.ensure_experiment("a", None, None).id
        b = store.ensure_experiment("b", None, None).id
        store.add_trials(a, new_trials(7))
        store.add_trials(b, new_trials(3))
        ids = [c.task.id for c in claim(store, limit=5, experiment_ids=[a])]
        now = time.time()
        store.record(
            LEASE_A,
            [
                done(ids[0], started_at=now - 5, duration_s=1.0),
                done(ids[1], started_at=now - 4, duration_s=1.0),
                Outcome(ids[2], TrialStatus.FAILED, error="E", started_at=now, duration_s=0.1),
            ],
        )
        store.register_worker(LEASE_B, 4, "processes")


def _same(a: ov.StoreOverview, b: ov.StoreOverview) -> bool:
    """Equal, but for rates read a moment apart (the rate counts back from now)."""
    rates = [e.rate for e in a.experiments] == pytest.approx(
        [e.rate for e in b.experiments], rel=0.01
    )
    plain = [(e.name, e.counts) for e in a.experiments] == [
        (e.name, e.counts) for e in b.experiments
    ]
    return rates and plain and (a.url, a.workers) == (b.url, b.workers)


def _quick(url: str, experiment: str | None = None) -> ov.StoreOverview:
    """The SQLite reader's overview, which must not have fallen back to the contract."""
    found = ov._read_sqlite(ov._sqlite_file(url), experiment)
    assert found is not None
    seen = ov.StoreOverview(url, *found)
    assert _same(sl.overview(url, experiment), seen)
    return seen


def test_the_sqlite_reading_agrees_with_the_contract(sqlite_url):
    _busy_store(sqlite_url)

    quick = _quick(sqlite_url)
    contract = ov._read_store(sqlite_url, None)

    assert _same(quick, contract)
    a, b = quick.experiments
    assert (a.name, a.counts) == ("a", {"pending": 2, "running": 2, "done": 2, "failed": 1})
    assert (b.name, b.counts, b.rate) == (
        "b",
        {"pending": 3, "running": 0, "done": 0, "failed": 0},
        0,
    )
    assert a.rate == pytest.approx(3 / ov.RATE_WINDOW_S)
    assert a.trials == 7 and a.eta_s == pytest.approx(4 / a.rate)
    assert b.eta_s is None  # no rate yet
    assert [(w.host, w.pid, w.slots, w.backend) for w in quick.workers] == [
        (LEASE_B.host, LEASE_B.pid, 4, "processes")
    ]
    assert [(e.name, e.counts) for e in _quick(sqlite_url, "b").experiments] == [(b.name, b.counts)]


def test_on_sqlite_it_loads_neither_sqlalchemy_nor_the_store(sqlite_url):
    _busy_store(sqlite_url)
    code = (
        "import sys, sweeplab as sl\n"
        f"seen = sl.overview({sqlite_url!r})\n"
        "assert seen.experiments[0].counts['done'] == 2, seen\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'"
        " or m == 'sweeplab.store.base'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_rate_of_a_quick_sweep_is_read_from_its_latest_trials(sqlite_url):
    with sl.open_store(sqlite_url) as store:
        exp = store.ensure_experiment("quick", None, None).id
        store.add_trials(exp, new_trials(ov.RATE_TRIALS + 500))
        claimed = claim(store, limit=ov.RATE_TRIALS + 500)
        now = time.time()
        # one finish every 10 ms, the latest 40 s ago (long before, so that the time
        # this test takes moves the rate by less than 1%)
        store.record(
            LEASE_A,
            [
                done(c.task.id, started_at=now - 40 - i / 100, duration_s=0.0)
                for i, c in enumerate(claimed)
            ],
        )

    (quick,) = _quick(sqlite_url).experiments
    assert quick.eta_s is None  # nothing left
    # the latest 1,000 span 10 s, and 40 s have passed since: 1000 in 50 s (the other
    # 500, older still, do not count)
    assert quick.rate == pytest.approx(ov.RATE_TRIALS / 50.0, rel=0.02)
    assert ov._read_store(sqlite_url, None).experiments[0].rate == pytest.approx(
        quick.rate, rel=0.05
    )


def test_a_tally_that_does_not_hold_is_read_through_the_contract_which_mends_it(sqlite_url):
    _busy_store(sqlite_url)
    path = ov._sqlite_file(sqlite_url)
    db = sqlite3.connect(path)
    with db:  # as an older sweeplab writing through an upgrade might leave it
        db.execute(  # b runs trials it does not have
            "INSERT OR REPLACE INTO sweeplab_tally VALUES "
            "((SELECT id FROM sweeplab_experiments WHERE name = 'b'), 'running', 2)"
        )
        db.execute("DELETE FROM sweeplab_tally WHERE status = 'failed'")  # a's failed one
    db.close()

    assert ov._read_sqlite(path, None) is None  # the quick reader declines
    seen = sl.overview(sqlite_url)

    assert [(e.name, e.counts) for e in seen.experiments] == [
        ("a", {"pending": 2, "running": 2, "done": 2, "failed": 1}),
        ("b", {"pending": 3, "running": 0, "done": 0, "failed": 0}),
    ]
    assert _same(_quick(sqlite_url), seen)  # counted afresh: quick again


def test_the_sqlite_reader_knows_the_schema_the_store_writes():
    assert sqlite_file.READS_SCHEMA == SCHEMA_VERSION


def test_a_file_that_cannot_be_read_gets_the_contracts_error(sqlite_url, monkeypatch):
    _busy_store(sqlite_url)

    def unreadable(path):  # what opening a file without read permission raises
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sqlite_file, "read_only", unreadable)
    assert ov._read_sqlite(ov._sqlite_file(sqlite_url), None) is None
    # a StoreError naming the file (one line on the command line), never a traceback
    with pytest.raises(StoreError, match=r"cannot read .*store\.db: Permission denied"):
        sl.overview(sqlite_url)


def test_what_the_sqlite_reader_cannot_answer_gets_the_contracts_errors(tmp_path, sqlite_url):
    with pytest.raises(NoStore):
        sl.overview(f"sqlite:///{tmp_path / 'missing.db'}")
    _busy_store(sqlite_url)
    with pytest.raises(UnknownExperiment):
        sl.overview(sqlite_url, "nope")


def test_a_memory_store_is_read_through_the_contract():
    with sl.open_store("memory://") as store:
        exp = store.ensure_experiment("m", None, None).id
        store.add_trials(exp, new_trials(2))
        (m,) = sl.overview(store).experiments
    assert m.counts == {"pending": 2, "running": 0, "done": 0, "failed": 0}
