"""The SQL store: the store contract over SQLAlchemy Core, for SQLite, PostgreSQL and MySQL."""

from __future__ import annotations

import contextlib
import json
import logging
import operator
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, inspect, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from sweeplab._version import __version__
from sweeplab.errors import (
    LeaseLost,
    NoStore,
    NotAStore,
    SchemaVersionError,
    StoreError,
    UnknownExperiment,
)
from sweeplab.interpreter import note_sqlite_opened
from sweeplab.jsonvalues import loads, loads_each
from sweeplab.store.base import (
    BaseStore,
    ClaimedTrial,
    ExperimentRecord,
    Lease,
    MetricRecord,
    NewTrial,
    WorkerRecord,
)
from sweeplab.store.sql import dialects, records, schema, sqlite_file
from sweeplab.store.sql import statements as q
from sweeplab.store.sql.credentials import driver_options, with_credentials
from sweeplab.store.sql.pipeline import built_ahead
from sweeplab.store.sql.retries import open_with_retries, retried, scrubbed
from sweeplab.store.sql.schema import (
    SCHEMA_VERSION,
    artifacts,
    checkpoints,
    experiments,
    meta,
    trials,
)
from sweeplab.trial import Outcome, TrialColumns, TrialRecord, TrialStatus

ADD_CHUNK = 5000
ID_CHUNK = 900  # below SQLite's oldest limit on bound variables


log = logging.getLogger("sweeplab.store")


def _transient(exc: BaseException | None) -> bool:
    """A dropped or refused connection, a deadlock: worth another try."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError))


class SQLStore(BaseStore):
    """A store in an SQL database. ``create=False`` refuses to make a new one."""

    def __init__(self, url: str | URL, *, create: bool = True) -> None:
        self.url = with_credentials(dialects.normalize_url(url))
        self.display_url = self.url.render_as_string(hide_password=True)
        #: the full URL, password included, for this machine's worker processes only
        self.url_for_workers = self.url.render_as_string(hide_password=False)
        self.kind = dialects.family(self.url)
        if self.kind == "sqlite":
            note_sqlite_opened()
            _check_sqlite_file(self.url, create)
        self.engine = dialects.make_engine(self.url, driver_options(self.url))
        # a store dropped without close(), or still open at exit, closes its connections
        # too: SQLite folds its WAL back into the file even where the CLI skips the shutdown
        self._dispose = weakref.finalize(self, _dispose_in, os.getpid(), self.engine)
        self._skip_locked = dialects.skip_locked(self.kind)
        self._compiled: dict[Any, tuple[str, Any, dict[str, Any]]] = {}
        self._insert_trials = q.add_trial(self.kind)
        try:
            self._open_with_retries(create)
        except BaseException:
            self._dispose()  # nobody can close a store that failed to open
            raise

    # -- opening -------------------------------------------------------------------
    def _open_with_retries(self, create: bool) -> None:
        def open_once() -> None:
            with self._translated("open"):
                self._open_schema(create)

        if self.kind == "sqlite":
            open_once()
        else:
            open_with_retries(open_once)

    def _open_schema(self, create: bool) -> None:
        with self.engine.connect() as conn:
            try:
                with conn.begin():
                    dialects.schema_lock(self.kind, conn)
                    self._check_or_create_schema(conn, create)
            finally:
                # After the commit: MySQL's lock belongs to the session, not the
                # transaction, and its DDL commits at once; released before the meta rows
                # are committed, another process would find the tables without them.
                dialects.schema_unlock(self.kind, conn)
        if self.kind != "sqlite":
            with self.engine.connect() as conn:
                self._skip_locked = _server_skips_locked(self.kind, conn)

    def _check_or_create_schema(self, conn: Connection, create: bool) -> None:
        if inspect(conn).has_table(meta.name):
            found = self._check_version(dict(conn.execute(q.read_meta).all()))
            if found < SCHEMA_VERSION:
                schema.upgrade(conn, self.kind, found, f"sweeplab {__version__}")
                log.info("upgraded store %s from schema %d", self.display_url, found)
        elif not create:
            raise StoreError(
                f"no sweeplab store at {self.display_url}: create it with "
                "`sweeplab add` or `sweeplab run`, or pass the right --store"
            )
        else:
            schema.create(conn, self.kind)
            conn.execute(
                insert(meta),
                [
                    {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                    {"key": "created_by", "value": f"sweeplab {__version__}"},
                ],
            )

    def _check_version(self, values: dict[str, str]) -> int:
        """The store's schema version, if this sweeplab reads it or can upgrade it."""
        found = int(values.get("schema_version", "0"))
        if schema.OLDEST_UPGRADABLE <= found <= SCHEMA_VERSION:
            return found
        writer = values.get("upgraded_by") or values.get("created_by", "an unknown sweeplab")
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"store {self.display_url} has schema {found}, written by {writer}; this is "
                f"sweeplab {__version__} (schema {SCHEMA_VERSION}): upgrade with "
                "`pip install -U sweeplab`"
            )
        raise SchemaVersionError(
            f"store {self.display_url} has the older schema {found} ({writer}); sweeplab "
            f"{__version__} reads schema {SCHEMA_VERSION}: finish it with that version, or "
            "start a new store with --store"
        )

    # -- connections ---------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """The one boundary where database errors become StoreError, password-free."""
        try:
            yield
        except DBAPIError as exc:
            raise StoreError(
                f"cannot {action} store {self.display_url}: {self._scrub(exc.orig)}"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot {action} store {self.display_url}: {self._scrub(exc)}"
            ) from exc

    def _scrub(self, exc: BaseException | None) -> str:
        return scrubbed(exc, self.url.password)

    def _transient(self, cause: BaseException | None) -> bool:
        return self.kind != "sqlite" and _transient(cause)

    def close(self) -> None:
        self._dispose()

    # -- experiments ---------------------------------------------------------------
    @retried
    def ensure_experiment(
        self, name: str, target: str | None, function_pickle: bytes | None
    ) -> ExperimentRecord:
        with self._translated("write to"), self._write() as conn:
            conn.execute(
                dialects.insert_ignore(self.kind, experiments),
                {
                    "name": name,
                    "target": target,
                    "function_pickle": function_pickle,
                    "created_at": time.time(),
                },
            )
            row = conn.execute(q.experiment_by_name, {"p_name": name}).one()
            if (row.target, row.function_pickle) != (target, function_pickle):
                conn.execute(
                    q.update_experiment_function,
                    {"b_id": row.id, "b_target": target, "b_pickle": function_pickle},
                )
            return ExperimentRecord(row.id, name, target, function_pickle, row.created_at)

    @retried
    def experiment(self, name: str) -> ExperimentRecord:
        with self._translated("read"), self._read() as conn:
            row = conn.execute(q.experiment_by_name, {"p_name": name}).one_or_none()
            if row is None:
                names = [r.name for r in conn.execute(q.all_experiments)]
                raise UnknownExperiment(
                    f"store {self.display_url} has no experiment {name!r}: "
                    + (f"it has {', '.join(map(repr, names))}" if names else "it is empty")
                )
        return records.experiment(row)

    @retried
    def experiments(self) -> list[ExperimentRecord]:
        with self._translated("read"), self._read() as conn:
            return [records.experiment(r) for r in conn.execute(q.all_experiments)]

    # -- trials --------------------------------------------------------------------
    def add_trials(self, experiment_id: int, trials_: Iterable[NewTrial]) -> int:
        # One transaction for the whole space: a bad point half-way leaves the store as it was.
        # Chunks are built on a thread while the previous one is written (pipeline.py).
        added = 0
        with self._translated("add trials to"), self._write() as conn:
            if self.kind != "sqlite":  # one writer at a time there anyway
                # adders of one experiment take turns (``lock_experiment`` says why)
                conn.execute(q.lock_experiment, {"p_experiment_id": experiment_id})
            if dialects.inserts_from_json(self.kind):
                stmt = q.add_trials_from_json(self.kind)
                for rows_json in built_ahead(trials_, ADD_CHUNK, _as_json):
                    params = {"b_experiment_id": experiment_id, "b_rows": rows_json}
                    added += conn.execute(stmt, {**params, "b_now": time.time()}).rowcount
                self._tally_added(conn, experiment_id, added)
                return added

            def as_rows(chunk: list[NewTrial]) -> list[tuple]:
                now = time.time()  # in the order of q.ADDED_TRIAL: a tuple a trial, no dict
                return [
                    (experiment_id, key, rep, params, seed, q.PENDING, 0, 1, now)
                    for key, params, rep, seed in chunk
                ]

            stmt = self._insert_trials
            for rows in built_ahead(trials_, ADD_CHUNK, as_rows):
                # psycopg 3 (pipelined) and PyMySQL (one multi-row INSERT) sum the rowcount
                added += max(self._executemany_tuples(conn, stmt, q.ADDED_TRIAL, rows), 0)
            self._tally_added(conn, experiment_id, added)
        return added

    def _tally_added(self, conn: Connection, experiment_id: int, added: int) -> None:
        if dialects.keeps_tally(self.kind) and added:
            conn.execute(q.tally_added(), {"b_experiment_id": experiment_id, "b_added": added})

    @retried
    def claim(
        self,
        lease: Lease,
        limit: int,
        lease_s: float,
        max_attempts: int,
        experiment_ids: Sequence[int] | None = None,
    ) -> list[ClaimedTrial]:
        by_experiment = experiment_ids is not None
        params = records.claim_params(lease, limit, lease_s, max_attempts)
        if by_experiment:
            params["p_experiment_ids"] = list(experiment_ids)
        with self._translated("claim trials from"), self._write() as conn:
            if dialects.claim_supports_returning(self.kind):
                stmt = q.claim_returning(self.kind, by_experiment, self._skip_locked)
                rows = conn.execute(stmt, params).all()
                rows.sort(key=lambda r: r[0])
                attempts = [r[5] for r in rows]
            else:
                stmt = q.claim_select(by_experiment, self._skip_locked)
                rows = conn.execute(stmt, params).all()
                if rows:
                    conn.execute(
                        q.claim_update(self.kind), {**params, "p_ids": [r[0] for r in rows]}
                    )
                attempts = [r[5] + 1 for r in rows]
        return records.claimed(rows, attempts)

    @retried
    def record(self, lease: Lease, outcomes: Sequence[Outcome]) -> int:
        if not outcomes:
            return 0
        recorded = 0
        with self._translated("record outcomes in"), self._write() as conn:
            if not any(o.metrics for o in outcomes):
                # the common batch: the fence in the UPDATE's own WHERE, one statement and no
                # read; a trial taken over by another lease (or recorded twice) matches no row
                return self._write_outcomes(conn, outcomes, lease)
            for start in range(0, len(outcomes), ID_CHUNK):
                chunk = outcomes[start : start + ID_CHUNK]
                held = self._held(conn, lease, [o.trial_id for o in chunk])
                held_outcomes, metric_rows = [], []
                for o in chunk:
                    # pop: a second outcome for the same trial finds it no longer held
                    attempt = held.pop(o.trial_id, None)
                    if attempt is None:
                        continue  # taken over by another lease: its outcome wins
                    held_outcomes.append(o)
                    metric_rows.extend(
                        {
                            "trial_id": o.trial_id,
                            "attempt": attempt,
                            "step": step,
                            "name": name,
                            "value": value,
                            "logged_at": at,
                        }
                        for step, name, value, at in o.metrics
                    )
                if held_outcomes:
                    self._write_outcomes(conn, held_outcomes, None)
                if metric_rows:
                    self._executemany(conn, q.insert_metric, metric_rows)
                recorded += len(held_outcomes)
        return recorded

    def _write_outcomes(
        self, conn: Connection, outcomes: Sequence[Outcome], fence: Lease | None
    ) -> int:
        """Write outcomes; with ``fence``, only to trials that lease still holds. How many
        were written."""
        owner = None if fence is None else fence.owner
        if dialects.updates_from_json(self.kind, conn.dialect):
            stmt = q.record_outcomes_from_json(self.kind, fenced=owner is not None)
            written = 0
            for chunk in records.by_size(records.first_outcomes(outcomes)):
                params: dict[str, Any] = {"b_outcomes": chunk}
                if owner is not None:
                    params["b_owner"] = owner
                written += conn.execute(stmt, params).rowcount
            return written
        stmt = q.record_outcome if owner is None else q.record_fenced_outcome
        return self._executemany(conn, stmt, [records.outcome_params(o, owner) for o in outcomes])

    def _executemany(self, conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> int:
        """executemany straight through the driver: the statement is compiled once by
        SQLAlchemy, and the rows skip its per-row parameter processing, which costs more
        than SQLite's own insert. Our values need none (no custom types). Where the driver's
        executemany is a round trip a row (psycopg2), SQLAlchemy's own, which sends many
        rows to a statement."""
        if not dialects.driver_executes_many_at_once(self.engine.dialect):
            return conn.execute(stmt, rows).rowcount
        keys = tuple(rows[0])
        compiled = self._compiled.get((stmt, keys))
        if compiled is None:
            # column_keys: an INSERT names only the columns the rows give
            c = stmt.compile(dialect=self.engine.dialect, column_keys=list(keys))
            names = c.positiontup if c.positional else None
            compiled = self._compiled[stmt, keys] = (str(c), names, dict(c.params))
        sql, names, defaults = compiled
        if names is None:
            params: list[Any] = [{**defaults, **row} for row in rows] if defaults else rows
        elif set(names) <= set(keys):
            take = operator.itemgetter(*names)
            params = [take(row) for row in rows] if len(names) > 1 else [(take(r),) for r in rows]
        else:
            params = [tuple(row.get(n, defaults.get(n)) for n in names) for row in rows]
        return conn.exec_driver_sql(sql, params).rowcount

    def _executemany_tuples(
        self, conn: Connection, stmt: Any, names: tuple[str, ...], rows: list[tuple]
    ) -> int:
        """``_executemany`` for rows given as tuples of the binds ``names``: handed to a
        positional driver (SQLite's ``?``, PyMySQL's ``%s``) as they are when the statement
        binds in that order, else as dicts (psycopg's named binds)."""
        compiled = self._compiled.get((stmt, names))
        if compiled is None:
            c = stmt.compile(dialect=self.engine.dialect)
            order = tuple(c.positiontup) if c.positional else None
            compiled = self._compiled[stmt, names] = (str(c), order, {})
        sql, order, _ = compiled
        if order != names:
            return self._executemany(conn, stmt, [dict(zip(names, row)) for row in rows])
        return conn.exec_driver_sql(sql, rows).rowcount

    def _held(self, conn: Connection, lease: Lease, ids: list[int]) -> dict[int, int]:
        stmt = q.held_by_lease
        if self.kind != "sqlite":
            stmt = stmt.with_for_update()
        return dict(conn.execute(stmt, {"p_ids": ids, "p_owner": lease.owner}).all())

    @retried
    def release(self, lease: Lease, trial_ids: Sequence[int] | None = None) -> int:
        with self._translated("release trials in"), self._write() as conn:
            if trial_ids is None:
                return conn.execute(q.release_all, {"p_owner": lease.owner}).rowcount
            released = 0
            for start in range(0, len(trial_ids), ID_CHUNK):
                ids = list(trial_ids[start : start + ID_CHUNK])
                released += conn.execute(
                    q.release_some, {"p_owner": lease.owner, "p_ids": ids}
                ).rowcount
            return released

    @retried
    def heartbeat(self, lease: Lease, lease_s: float) -> int:
        with self._translated("heartbeat in"), self._write() as conn:
            conn.execute(q.heartbeat_worker(self.kind), {"p_owner": lease.owner})
            return conn.execute(
                q.heartbeat_trials(self.kind), {"p_owner": lease.owner, "p_lease_s": lease_s}
            ).rowcount

    @retried
    def reclaim(self, host: str, is_alive: Callable[[int], bool]) -> int:
        with self._translated("reclaim trials in"), self._write() as conn:
            holders = conn.execute(q.running_holders(self.kind)).all()
            registered = conn.execute(q.registered_workers(self.kind)).all()
            lost = records.Lost(holders, registered, host, is_alive)
            failed = requeued = 0
            if lost.trials:
                failed = conn.execute(q.fail_lost(self.kind), lost.params).rowcount
                requeued = conn.execute(q.requeue_lost(self.kind), lost.params).rowcount
            if lost.workers:
                conn.execute(q.forget_dead_workers(self.kind), lost.params)
        return failed + requeued

    @retried
    def counts(self, experiment_id: int) -> dict[TrialStatus, int]:
        if dialects.keeps_tally(self.kind):
            return self._tallied_counts(experiment_id)
        params = {"p_experiment_id": experiment_id}
        with self._translated("read"), self._read() as conn:
            row = conn.execute(q.counts_by_status, params).one()
        return {TrialStatus(status): n for status, n in zip(q.STATUSES, row)}

    @retried
    def unfinished(self, experiment_id: int) -> bool:
        params = {"p_experiment_id": experiment_id}
        with self._translated("read"), self._read() as conn:
            present = dict(zip(q.STATUSES, conn.execute(q.statuses_present, params).one()))
        return bool(present[q.PENDING] or present[q.RUNNING])

    def _tallied_counts(self, experiment_id: int) -> dict[TrialStatus, int]:
        """SQLite's counts, from the tally, checked against the trials where a run's end is
        decided: a status tallied empty must have no trial, and one tallied above zero some.
        A tally that fails (moved by a process of an older sweeplab, say) is counted afresh,
        so no runner waits forever on trials that are not there."""
        params = {"p_experiment_id": experiment_id}
        with self._translated("read"), self._read() as conn:
            tallied = dict(conn.execute(q.tally_of_experiment, params).all())
            present = conn.execute(q.statuses_present, params).one()
        counts = [tallied.get(s, 0) for s in q.STATUSES]
        if sqlite_file.tally_holds(counts, present):
            return {TrialStatus(s): n for s, n in zip(q.STATUSES, counts)}
        log.warning("the tally of experiment %d was off; counting its trials afresh", experiment_id)
        with self._translated("write to"), self._write() as conn:
            schema.recount_tally(conn, experiment_id)
            tallied = dict(conn.execute(q.tally_of_experiment, params).all())
        return {TrialStatus(s): tallied.get(s, 0) for s in q.STATUSES}

    @retried
    def recent_finishes(self, experiment_id: int, since: float, limit: int) -> list[float]:
        params = {"p_experiment_id": experiment_id, "p_since": since, "p_limit": limit}
        with self._translated("read"), self._read() as conn:
            return list(conn.execute(q.recent_finishes, params).scalars())

    @retried
    def trials(
        self, experiment_id: int, statuses: Sequence[TrialStatus] | None = None
    ) -> list[TrialRecord]:
        query = select(*q.TRIAL_COLUMNS).where(trials.c.experiment_id == experiment_id)
        if statuses:
            query = query.where(trials.c.status.in_([str(s) for s in statuses]))
        with self._translated("read"), self._read() as conn:
            name = conn.execute(
                select(experiments.c.name).where(experiments.c.id == experiment_id)
            ).scalar_one()
            return [_trial(name, r) for r in conn.execute(query.order_by(trials.c.id))]

    @retried
    def trial_columns(
        self, experiment_id: int, statuses: Sequence[TrialStatus] | None = None
    ) -> TrialColumns:
        query = select(*q.RESULT_COLUMNS).where(trials.c.experiment_id == experiment_id)
        if statuses:
            query = query.where(trials.c.status.in_([str(s) for s in statuses]))
        with self._translated("read"), self._read() as conn:
            # an unknown experiment fails here, as in trials()
            conn.execute(
                select(experiments.c.name).where(experiments.c.id == experiment_id)
            ).scalar_one()
            rows = conn.execute(query.order_by(trials.c.id)).all()
        if not rows:
            return TrialColumns.of([])
        columns = dict(zip((c.name for c in q.RESULT_COLUMNS), zip(*rows)))
        columns["params"] = loads_each(columns["params"])
        columns["result"] = loads_each(columns["result"])
        return TrialColumns(**columns)

    @retried
    def trial(self, experiment_id: int, trial_id: int) -> TrialRecord | None:
        with self._translated("read"), self._read() as conn:
            name = conn.execute(
                select(experiments.c.name).where(experiments.c.id == experiment_id)
            ).scalar_one()
            row = conn.execute(
                q.trial_by_id, {"p_experiment_id": experiment_id, "p_trial_id": trial_id}
            ).one_or_none()
        return None if row is None else _trial(name, row)

    @retried
    def reset(self, experiment_id: int, statuses: Sequence[TrialStatus]) -> int:
        with self._translated("reset trials in"), self._write() as conn:
            return conn.execute(
                q.reset_trials,
                {"p_experiment_id": experiment_id, "p_statuses": [str(s) for s in statuses]},
            ).rowcount

    @retried
    def metrics(self, experiment_id: int) -> list[MetricRecord]:
        with self._translated("read"), self._read() as conn:
            rows = conn.execute(q.metrics_of_experiment, {"p_experiment_id": experiment_id})
            return [MetricRecord(*r) for r in rows]

    # -- trial sink ----------------------------------------------------------------
    @retried
    def save_checkpoint(self, trial_id: int, owner: str, data: bytes) -> None:
        with self._translated("checkpoint to"), self._write() as conn:
            self._require_held(conn, trial_id, owner)
            values = {"trial_id": trial_id, "data": data, "updated_at": time.time()}
            conn.execute(dialects.upsert(self.kind, checkpoints, ["trial_id"], values))

    @retried
    def load_checkpoint(self, trial_id: int) -> bytes | None:
        with self._translated("read"), self._read() as conn:
            return conn.execute(q.checkpoint_of_trial, {"p_trial_id": trial_id}).scalar()

    @retried
    def save_artifact(self, trial_id: int, owner: str, name: str, data: bytes) -> None:
        with self._translated("save an artifact to"), self._write() as conn:
            self._require_held(conn, trial_id, owner)
            values = {"trial_id": trial_id, "name": name, "data": data, "created_at": time.time()}
            conn.execute(dialects.upsert(self.kind, artifacts, ["trial_id", "name"], values))

    @retried
    def artifacts(self, trial_id: int) -> dict[str, bytes]:
        query = select(artifacts.c.name, artifacts.c.data).where(artifacts.c.trial_id == trial_id)
        with self._translated("read"), self._read() as conn:
            rows = conn.execute(query).all()
        # sorted here: ORDER BY follows the server's collation, which differs between servers
        return dict(sorted(rows))

    def _require_held(self, conn: Connection, trial_id: int, owner: str) -> None:
        held = conn.execute(q.trial_is_held, {"p_trial_id": trial_id, "p_owner": owner}).first()
        if held is None:
            raise LeaseLost(
                f"trial {trial_id} is no longer held by this worker: its lease expired "
                "and it was handed to another; this attempt's writes are dropped"
            )

    # -- workers -------------------------------------------------------------------
    @retried
    def register_worker(self, lease: Lease, slots: int, backend: str) -> None:
        values = records.worker(lease, slots, backend)
        with self._translated("register a worker in"), self._write() as conn:
            conn.execute(q.register_worker(self.kind), values)
            conn.execute(q.heartbeat_worker(self.kind), {"p_owner": lease.owner})

    @retried
    def unregister_worker(self, lease: Lease) -> None:
        with self._translated("unregister a worker from"), self._write() as conn:
            conn.execute(q.delete_worker, {"p_owner": lease.owner})

    @retried
    def workers(self) -> list[WorkerRecord]:
        with self._translated("read"), self._read() as conn:
            return [WorkerRecord(*r) for r in conn.execute(q.all_workers)]


def _dispose_in(pid: int, engine: Engine) -> None:
    """Close the engine's connections, in the process that opened them only: a forked
    child that closed them would end the parent's sessions with the server."""
    if os.getpid() == pid:
        engine.dispose()


def _as_json(chunk: list[NewTrial]) -> str:
    """A chunk of trials as ``add_trials_from_json`` reads it: an array of 4-arrays."""
    return json.dumps(chunk, separators=(",", ":"))


def _trial(experiment: str, r: Any) -> TrialRecord:
    return TrialRecord(
        id=r[0],
        experiment=experiment,
        params=loads(r[1]),
        repetition=r[2],
        seed=r[3],
        status=TrialStatus(r[4]),
        attempts=r[5],
        result=None if r[6] is None else loads(r[6]),
        error=r[7],
        error_kind=r[8],
        traceback=r[9],
        created_at=r[10],
        started_at=r[11],
        finished_at=r[12],
        duration_s=r[13],
        host=r[14],
        lease_owner=r[15],
        lease_expires_at=r[16],
    )


def _server_skips_locked(kind: str, conn: Connection) -> bool:
    """SKIP LOCKED: PostgreSQL 9.5+, MySQL 8.0+, MariaDB 10.6+; older servers block instead."""
    version = conn.dialect.server_version_info or (0,)
    if kind == "postgresql":
        return version >= (9, 5)
    if getattr(conn.dialect, "is_mariadb", False):
        return version >= (10, 6)
    return version >= (8, 0)


def _check_sqlite_file(url: URL, create: bool) -> None:
    """Refuse, without writing a byte, a file that is not a sweeplab store."""
    database = url.database or ""
    if database in ("", ":memory:"):
        raise StoreError(
            "an in-memory SQLite store cannot be shared between processes: "
            "use sqlite:///FILE, or memory:// for a store that lives in this process"
        )
    path = Path(database)
    if not path.exists():
        if not create:
            raise NoStore(
                f"no store at {path}: create it with `sweeplab add` or `sweeplab run`, "
                "or pass the right --store"
            )
        if not path.parent.is_dir():
            raise StoreError(f"cannot create store {path}: folder {path.parent} does not exist")
        return
    if path.is_dir():
        raise NotAStore(f"{path} is a folder, not a store: pass sqlite:///FILE")
    if path.stat().st_size == 0:
        return
    try:
        tables = _sqlite_names(path)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise NotAStore(
            f"{path} is not a sweeplab store (not an SQLite database: {exc}); "
            "it was left untouched: pass another --store"
        ) from exc
    if tables and "sweeplab_meta" not in tables:
        raise NotAStore(
            f"{path} is an SQLite database without sweeplab's tables; it was left "
            "untouched: pass another --store"
        )


def _sqlite_names(path: Path) -> set[str]:
    """The names in an SQLite file's schema, read without writing a file beside it."""
    probe = sqlite_file.read_only(path)
    try:
        return {r[0] for r in probe.execute("SELECT name FROM sqlite_master")}
    finally:
        probe.close()
