"""A worker's PostgreSQL store: its hot path through psycopg2, without SQLAlchemy.

Importing SQLAlchemy is most of what a `sweeplab worker` costs before its first trial
(about 120 ms of CPU of 230 here), and N workers starting on a machine of few cores pay
it N times over. So a worker on PostgreSQL runs what it does on every claim, outcome,
heartbeat and look for work with SQL that SQLAlchemy compiled ahead of time from the same
statements (``postgres_sql.py``, checked against a fresh compilation by a test), through
psycopg2. Anything else (a trial's checkpoints and metrics, adding trials, reading
results) goes to a full ``SQLStore``, opened on first use: the same transactions, the
same errors.

The store falls back to ``SQLStore`` altogether where it cannot speak for it: a URL with
more than one host or a driver other than psycopg2, a schema other than this sweeplab's
(which SQLStore upgrades or refuses with its own message), a server without SKIP LOCKED.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from sweeplab.errors import StoreError, UnknownExperiment
from sweeplab.store.base import (
    BaseStore,
    ClaimedTrial,
    ExperimentRecord,
    Lease,
    MetricRecord,
    NewTrial,
    WorkerRecord,
)
from sweeplab.store.sql import records
from sweeplab.store.sql.credentials import missing_credentials
from sweeplab.store.sql.postgres_sql import SCHEMA_VERSION, STATEMENTS
from sweeplab.store.sql.retries import open_with_retries, retried, scrubbed
from sweeplab.trial import Outcome, TrialColumns, TrialRecord, TrialStatus

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
_STATUSES = tuple(TrialStatus)  # in the order of statements.STATUSES
#: idle connections kept: the runner's and its heartbeat thread's
_KEEP_IDLE = 2


def open_worker_store(url: str) -> BaseStore:
    """The store for a worker at ``url``: this one where it can, else an ``SQLStore``."""
    target = _Target.parse(url)
    if target is not None:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            target = None  # SQLStore says which extra installs it
    if target is not None:
        store = DirectPostgresStore(target)
        if store.usable:
            return store
        store.close()
    from sweeplab.store.sql.store import SQLStore

    return SQLStore(url, create=False)


class _Target:
    """Where to connect, parsed from the URL as SQLAlchemy's psycopg2 dialect would."""

    def __init__(self, parts: dict[str, Any], query: dict[str, str]) -> None:
        self.parts = parts  # host, port, username, password, database
        self.query = query

    @classmethod
    def parse(cls, url: str) -> _Target | None:
        """None where this parser and SQLAlchemy's could read the URL differently: a raw
        ``#``, or a ``/``, ``?`` or second ``@`` before the host (SQLAlchemy reads a
        password up to the first ``@``, the standard library's parser from the last)."""
        userinfo = url.partition("://")[2].rpartition("@")[0]
        if "#" in url or any(c in userinfo for c in "/?@"):
            return None
        try:
            split = urlsplit(url)
            port = split.port
            pairs = parse_qsl(split.query, keep_blank_values=True, strict_parsing=False)
        except ValueError:
            return None  # SQLStore says what is wrong with it
        query = dict(pairs)
        if split.scheme not in _SCHEMES or len(query) != len(pairs) or "," in split.netloc:
            return None
        host = split.netloc.rpartition("@")[2]
        host = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
        parts = {
            "host": host or None,
            "port": port,
            "username": None if split.username is None else unquote(split.username),
            "password": None if split.password is None else unquote(split.password),
            "database": unquote(split.path[1:]) or None,
        }
        parts.update(missing_credentials(host or None, parts["username"], parts["password"], port))
        return cls(parts, query)

    def connect_args(self) -> dict[str, Any]:
        p = self.parts
        args = {"host": p["host"], "port": p["port"], "user": p["username"]}
        args |= {"password": p["password"], "dbname": p["database"], **self.query}
        return {k: v for k, v in args.items() if v is not None}

    def render(self, hide_password: bool) -> str:
        """As SQLAlchemy's ``URL.render_as_string`` writes it."""
        p = self.parts
        text = "postgresql+psycopg2://"
        if p["username"] is not None:
            text += quote(p["username"], safe=" +")
            if p["password"] is not None:
                text += ":" + ("***" if hide_password else quote(p["password"], safe=" +"))
            text += "@"
        if p["host"] is not None:
            text += f"[{p['host']}]" if ":" in p["host"] else p["host"]
        if p["port"] is not None:
            text += f":{p['port']}"
        if p["database"] is not None:
            text += "/" + quote(p["database"], safe=" +/")
        if self.query:
            pairs = sorted(self.query.items())
            text += "?" + "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
        return text


class DirectPostgresStore(BaseStore):
    """See the module doc. Thread-safe: each operation takes a connection of its own."""

    def __init__(self, target: _Target) -> None:
        self._target = target
        self._password = target.parts["password"]
        self.display_url = target.render(hide_password=True)
        #: the full URL, password included, for this machine's worker processes only
        self.url_for_workers = target.render(hide_password=False)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._full: BaseStore | None = None
        self._full_lock = threading.Lock()
        #: whether this store serves: the schema is this sweeplab's and claims skip locks
        self.usable = False
        open_with_retries(self._open)

    def _open(self) -> None:
        def work(cur: Any) -> tuple[str | None, bool]:
            cur.execute("SELECT to_regclass('sweeplab_meta') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None, False  # no store here: SQLStore says so
            self._run(cur, "read_meta")
            version = dict(cur.fetchall()).get("schema_version")
            return version, cur.connection.server_version >= 90500

        version, skips_locked = self._do("open", work)
        self.usable = version == str(SCHEMA_VERSION) and skips_locked

    # -- connections ---------------------------------------------------------------
    def _do(self, action: str, work: Callable[[Any], Any]) -> Any:
        """``work(cursor)`` in one transaction, committed on return; database errors become
        StoreError, password-free. A kept connection that the server closed meanwhile (it
        restarted) is replaced at once, as SQLAlchemy's pre-ping would; any other failure
        goes to ``retried``."""
        import psycopg2

        while True:
            conn, kept = None, False
            try:
                conn, kept = self._connection()
                cur = conn.cursor()
                done = work(cur)
                conn.commit()
                self._give_back(conn)
                return done
            except psycopg2.Error as exc:
                broken = conn is not None and conn.closed  # before we close it ourselves
                self._drop(conn)
                if kept and broken and self._transient(exc):
                    self._drop_kept()  # the same restart broke them all
                    continue
                raise StoreError(
                    f"cannot {action} store {self.display_url}: {scrubbed(exc, self._password)}"
                ) from exc
            except BaseException:
                self._drop(conn)  # mid-transaction: never handed out again
                raise

    def _connection(self) -> tuple[Any, bool]:
        """A connection, and whether it was kept from an earlier operation."""
        import psycopg2

        with self._lock:
            if os.getpid() != self._pid:  # a forked child: the parent's connections stay its own
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop(), True
        return psycopg2.connect(**self._target.connect_args()), False

    def _give_back(self, conn: Any) -> None:
        with self._lock:
            if os.getpid() == self._pid and len(self._idle) < _KEEP_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    @staticmethod
    def _drop(conn: Any) -> None:
        if conn is not None:
            conn.close()  # rolls back what it had begun

    def _drop_kept(self) -> None:
        with self._lock:
            kept, self._idle = self._idle, []
        for conn in kept:
            conn.close()

    def _transient(self, cause: BaseException | None) -> bool:
        import psycopg2

        return isinstance(cause, (psycopg2.OperationalError, psycopg2.InterfaceError))

    @staticmethod
    def _run(cur: Any, name: str, params: dict[str, Any] | None = None) -> None:
        sql, constants, expanding, as_json = STATEMENTS[name]
        binds = {**constants, **(params or {})}
        for key in expanding:  # psycopg2 writes a tuple as (a, b); (NULL) matches nothing
            binds[key] = tuple(binds[key]) or (None,)
        for key in as_json:
            binds[key] = json.dumps(binds[key])
        cur.execute(sql, binds)

    def close(self) -> None:
        if os.getpid() == self._pid:
            self._drop_kept()
        if self._full is not None:
            self._full.close()
            self._full = None

    def _sql_store(self) -> BaseStore:
        """The full store, for what a worker rarely does."""
        with self._full_lock:  # not _lock: opening may wait out a restart
            if self._full is None:
                from sweeplab.store.sql.store import SQLStore

                self._full = SQLStore(self.url_for_workers, create=False)
            return self._full

    # -- the hot path --------------------------------------------------------------
    @retried
    def experiment(self, name: str) -> ExperimentRecord:
        def work(cur: Any) -> ExperimentRecord | None:
            self._run(cur, "experiment_by_name", {"p_name": name})
            row = cur.fetchone()
            return None if row is None else records.experiment(row)

        found = self._do("read", work)
        if found is None:
            names = [e.name for e in self.experiments()]
            raise UnknownExperiment(
                f"store {self.display_url} has no experiment {name!r}: "
                + (f"it has {', '.join(map(repr, names))}" if names else "it is empty")
            )
        return found

    @retried
    def experiments(self) -> list[ExperimentRecord]:
        def work(cur: Any) -> list[ExperimentRecord]:
            self._run(cur, "all_experiments")
            return [records.experiment(r) for r in cur.fetchall()]

        return self._do("read", work)

    @retried
    def claim(
        self,
        lease: Lease,
        limit: int,
        lease_s: float,
        max_attempts: int,
        experiment_ids: Sequence[int] | None = None,
    ) -> list[ClaimedTrial]:
        params = records.claim_params(lease, limit, lease_s, max_attempts)
        name = "claim"
        if experiment_ids is not None:
            name, params["p_experiment_ids"] = "claim_of_experiments", experiment_ids

        def work(cur: Any) -> list[Any]:
            self._run(cur, name, params)
            return sorted(cur.fetchall())

        rows = self._do("claim trials from", work)
        return records.claimed(rows, [r[5] for r in rows])

    @retried
    def record(self, lease: Lease, outcomes: Sequence[Outcome]) -> int:
        if not outcomes:
            return 0
        if any(o.metrics for o in outcomes):
            return self._sql_store().record(lease, outcomes)

        # the fence in the UPDATE's own WHERE: a trial taken over by another lease, or
        # recorded twice, matches no row
        def work(cur: Any) -> int:
            written = 0
            for chunk in records.by_size(records.first_outcomes(outcomes)):
                params = {"b_outcomes": chunk, "b_owner": lease.owner}
                self._run(cur, "record_fenced_outcomes", params)
                written += cur.rowcount
            return written

        return self._do("record outcomes in", work)

    @retried
    def release(self, lease: Lease, trial_ids: Sequence[int] | None = None) -> int:
        if trial_ids is not None and not trial_ids:
            return 0
        params: dict[str, Any] = {"p_owner": lease.owner}
        if trial_ids is not None:
            params["p_ids"] = trial_ids
        name = "release_all" if trial_ids is None else "release_some"
        return self._do("release trials in", lambda cur: self._rowcount(cur, name, params))

    @retried
    def heartbeat(self, lease: Lease, lease_s: float) -> int:
        def work(cur: Any) -> int:
            self._run(cur, "heartbeat_worker", {"p_owner": lease.owner})
            params = {"p_owner": lease.owner, "p_lease_s": lease_s}
            return self._rowcount(cur, "heartbeat_trials", params)

        return self._do("heartbeat in", work)

    @retried
    def reclaim(self, host: str, is_alive: Callable[[int], bool]) -> int:
        def work(cur: Any) -> int:
            self._run(cur, "running_holders")
            holders = cur.fetchall()
            self._run(cur, "registered_workers")
            lost = records.Lost(holders, cur.fetchall(), host, is_alive)
            freed = 0
            if lost.trials:
                freed += self._rowcount(cur, "fail_lost", lost.params)
                freed += self._rowcount(cur, "requeue_lost", lost.params)
            if lost.workers:
                self._run(cur, "forget_dead_workers", lost.params)
            return freed

        return self._do("reclaim trials in", work)

    @retried
    def counts(self, experiment_id: int) -> dict[TrialStatus, int]:
        row = self._one("counts_by_status", {"p_experiment_id": experiment_id})
        return dict(zip(_STATUSES, row))

    @retried
    def unfinished(self, experiment_id: int) -> bool:
        pending, running, *_ = self._one("statuses_present", {"p_experiment_id": experiment_id})
        return bool(pending or running)

    @retried
    def register_worker(self, lease: Lease, slots: int, backend: str) -> None:
        values = records.worker(lease, slots, backend)

        def work(cur: Any) -> None:
            self._run(cur, "register_worker", values)
            self._run(cur, "heartbeat_worker", {"p_owner": lease.owner})

        self._do("register a worker in", work)

    @retried
    def unregister_worker(self, lease: Lease) -> None:
        def work(cur: Any) -> None:
            self._run(cur, "delete_worker", {"p_owner": lease.owner})

        self._do("unregister a worker from", work)

    def _one(self, name: str, params: dict[str, Any]) -> tuple:
        def work(cur: Any) -> tuple:
            self._run(cur, name, params)
            return cur.fetchone()

        return self._do("read", work)

    def _rowcount(self, cur: Any, name: str, params: dict[str, Any]) -> int:
        self._run(cur, name, params)
        return cur.rowcount

    # -- the rest, through SQLAlchemy ----------------------------------------------
    def ensure_experiment(
        self, name: str, target: str | None, function_pickle: bytes | None
    ) -> ExperimentRecord:
        return self._sql_store().ensure_experiment(name, target, function_pickle)

    def add_trials(self, experiment_id: int, trials: Iterable[NewTrial]) -> int:
        return self._sql_store().add_trials(experiment_id, trials)

    def recent_finishes(self, experiment_id: int, since: float, limit: int) -> list[float]:
        return self._sql_store().recent_finishes(experiment_id, since, limit)

    def trials(
        self, experiment_id: int, statuses: Sequence[TrialStatus] | None = None
    ) -> list[TrialRecord]:
        return self._sql_store().trials(experiment_id, statuses)

    def trial_columns(
        self, experiment_id: int, statuses: Sequence[TrialStatus] | None = None
    ) -> TrialColumns:
        return self._sql_store().trial_columns(experiment_id, statuses)

    def trial(self, experiment_id: int, trial_id: int) -> TrialRecord | None:
        return self._sql_store().trial(experiment_id, trial_id)

    def reset(self, experiment_id: int, statuses: Sequence[TrialStatus]) -> int:
        return self._sql_store().reset(experiment_id, statuses)

    def metrics(self, experiment_id: int) -> list[MetricRecord]:
        return self._sql_store().metrics(experiment_id)

    def save_checkpoint(self, trial_id: int, owner: str, data: bytes) -> None:
        self._sql_store().save_checkpoint(trial_id, owner, data)

    def load_checkpoint(self, trial_id: int) -> bytes | None:
        return self._sql_store().load_checkpoint(trial_id)

    def save_artifact(self, trial_id: int, owner: str, name: str, data: bytes) -> None:
        self._sql_store().save_artifact(trial_id, owner, name, data)

    def artifacts(self, trial_id: int) -> dict[str, bytes]:
        return self._sql_store().artifacts(trial_id)

    def workers(self) -> list[WorkerRecord]:
        return self._sql_store().workers()
