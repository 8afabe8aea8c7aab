"""Every statement the SQL store runs, named and built once with SQLAlchemy Core.

Values always travel as bound parameters; nothing here formats a value into SQL.
Statements that depend on the database's clock or claim syntax take the dialect
family (``kind``) and are cached per family.
"""

from __future__ import annotations

from dataclasses import fields
from functools import cache

from sqlalchemy import (
    JSON,
    BigInteger,
    Double,
    Text,
    and_,
    bindparam,
    case,
    column,
    delete,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    update,
)

from sweeplab.store.base import LOST_ALLOWANCE
from sweeplab.store.sql import dialects, records
from sweeplab.store.sql.schema import (
    checkpoints,
    experiments,
    meta,
    metrics,
    tally,
    trials,
    workers,
)
from sweeplab.trial import TrialColumns

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"

# NULL as SQL, not as a bound value: fewer parameters per row on the hot path
_NO_LEASE = {
    "lease_owner": null(),
    "lease_host": null(),
    "lease_pid": null(),
    "lease_expires_at": null(),
}

read_meta = select(meta.c.key, meta.c.value)

#: the binds of ``add_trial``, in the table's column order (which a positional driver's
#: placeholders follow): the experiment, a ``NewTrial``'s fields, the pending state, the time
ADDED_TRIAL = (
    "b_experiment_id",
    "b_point_key",
    "b_repetition",
    "b_params",
    "b_seed",
    "b_status",
    "b_attempts",
    "b_max_attempts",
    "b_now",
)


@cache
def add_trials_from_json(kind: str):
    """Insert every pending trial of a JSON array of ``[point_key, params, repetition, seed]``
    unless present: one statement a chunk, during which the database holds no GIL, so the
    next chunk is built meanwhile (``pipeline.built_ahead``)."""
    if kind == "postgresql":
        return _add_trials_from_json_postgresql()
    return _add_trials_from_json_sqlite()


def _add_trials_from_json_sqlite():
    from sqlalchemy.dialects.sqlite import insert

    rows = func.json_each(bindparam("b_rows")).table_valued("value").alias("r")
    fields = [func.json_extract(rows.c.value, literal_column(f"'$[{i}]'")) for i in range(4)]
    new_trials = (
        select(
            bindparam("b_experiment_id"),
            *fields,
            literal_column("'pending'"),
            literal_column("0"),
            literal_column("1"),
            bindparam("b_now"),
        )
        .select_from(rows)
        .where(true())  # SQLite needs a WHERE between INSERT ... SELECT and ON CONFLICT
    )
    columns = ["experiment_id", "point_key", "params", "repetition", "seed"]
    columns += ["status", "attempts", "max_attempts", "created_at"]
    return insert(trials).from_select(columns, new_trials).on_conflict_do_nothing()


def _add_trials_from_json_postgresql():
    # json_array_elements: where psycopg2's executemany would make a round trip a trial
    from sqlalchemy.dialects.postgresql import insert

    rows = func.json_array_elements(bindparam("b_rows", type_=Text).cast(JSON))
    rows = rows.table_valued("value").alias("r")
    fields = [
        rows.c.value.op("->>")(literal_column("0")),
        rows.c.value.op("->>")(literal_column("1")),
        rows.c.value.op("->>")(literal_column("2")).cast(trials.c.repetition.type),
        rows.c.value.op("->>")(literal_column("3")).cast(trials.c.seed.type),
    ]
    new_trials = select(
        bindparam("b_experiment_id", type_=trials.c.experiment_id.type),
        *fields,
        literal_column("'pending'"),
        literal_column("0"),
        literal_column("1"),
        bindparam("b_now", type_=trials.c.created_at.type),
    ).select_from(rows)
    columns = ["experiment_id", "point_key", "params", "repetition", "seed"]
    columns += ["status", "attempts", "max_attempts", "created_at"]
    # how many were added: SQLAlchemy keeps an INSERT's rowcount from psycopg 3 only if asked
    stmt = insert(trials).from_select(columns, new_trials).on_conflict_do_nothing()
    return stmt.execution_options(preserve_rowcount=True)


@cache
def add_trial(kind: str):
    """Insert a pending trial unless its point and repetition are there already."""
    return dialects.insert_ignore(kind, trials).values(
        experiment_id=bindparam("b_experiment_id"),
        point_key=bindparam("b_point_key"),
        params=bindparam("b_params"),
        repetition=bindparam("b_repetition"),
        seed=bindparam("b_seed"),
        # bound, not literal: PyMySQL turns an executemany into one multi-row INSERT only
        # when every value is a placeholder
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        max_attempts=bindparam("b_max_attempts"),
        created_at=bindparam("b_now"),
    )


experiment_by_name = select(experiments).where(experiments.c.name == bindparam("p_name"))
all_experiments = select(experiments).order_by(experiments.c.id)
#: taken by add_trials on a server: adders of one experiment take turns, where two
#: INSERT IGNOREs of the same keys would deadlock on InnoDB's duplicate-key locks
lock_experiment = (
    select(experiments.c.id)
    .where(experiments.c.id == bindparam("p_experiment_id"))
    .with_for_update()
)
update_experiment_function = (
    update(experiments)
    .where(experiments.c.id == bindparam("b_id"))
    .values(target=bindparam("b_target"), function_pickle=bindparam("b_pickle"))
)

TRIAL_COLUMNS = (
    trials.c.id,
    trials.c.params,
    trials.c.repetition,
    trials.c.seed,
    trials.c.status,
    trials.c.attempts,
    trials.c.result,
    trials.c.error,
    trials.c.error_kind,
    trials.c.traceback,
    trials.c.created_at,
    trials.c.started_at,
    trials.c.finished_at,
    trials.c.duration_s,
    trials.c.host,
    trials.c.lease_owner,
    trials.c.lease_expires_at,
)

#: what ``results()`` reads: the columns named by the fields of ``TrialColumns``, in order
RESULT_COLUMNS = tuple(trials.c[f.name] for f in fields(TrialColumns))

trial_by_id = select(*TRIAL_COLUMNS).where(
    trials.c.experiment_id == bindparam("p_experiment_id"), trials.c.id == bindparam("p_trial_id")
)

#: the experiment's trials in each status, in the order of STATUSES: one count of an index
#: range each, about twice as fast as a GROUP BY over every trial of the experiment
STATUSES = (PENDING, RUNNING, DONE, FAILED)
counts_by_status = select(
    *(
        select(func.count())
        .where(
            trials.c.experiment_id == bindparam("p_experiment_id"),
            trials.c.status == status,
        )
        .scalar_subquery()
        for status in STATUSES
    )
)

#: SQLite: the same counts, read from the tally (schema.py)
tally_of_experiment = select(tally.c.status, tally.c.n).where(
    tally.c.experiment_id == bindparam("p_experiment_id")
)

#: SQLite: whether the experiment has any trial in each status, in the order of STATUSES:
#: one step down the status index each, to check the tally where it decides (a run ends
#: when it counts nothing pending or running)
statuses_present = select(
    *(
        exists().where(
            trials.c.experiment_id == bindparam("p_experiment_id"),
            trials.c.status == status,
        )
        for status in STATUSES
    )
)


@cache
def tally_added():
    """SQLite: count ``b_added`` new pending trials of an experiment into the tally."""
    from sqlalchemy.dialects.sqlite import insert

    stmt = insert(tally).values(
        experiment_id=bindparam("b_experiment_id"), status=PENDING, n=bindparam("b_added")
    )
    return stmt.on_conflict_do_update(
        index_elements=[tally.c.experiment_id, tally.c.status],
        set_={"n": tally.c.n + stmt.excluded.n},
    )


#: when the latest trials finished: newest first down the finished index, so reading the
#: last thousand costs the same whether a million finished lately or ten
recent_finishes = (
    select(trials.c.finished_at)
    .where(
        trials.c.experiment_id == bindparam("p_experiment_id"),
        trials.c.finished_at > bindparam("p_since"),
        # a trial handed back for a retry has a finished_at too, but has not finished
        trials.c.status.in_([DONE, FAILED]),
    )
    .order_by(trials.c.finished_at.desc())
    .limit(bindparam("p_limit"))
)

# An outcome is written only where the lease still holds the trial: the fence.
held_by_lease = select(trials.c.id, trials.c.attempts).where(
    trials.c.id.in_(bindparam("p_ids", expanding=True)),
    trials.c.status == RUNNING,
    trials.c.lease_owner == bindparam("p_owner"),
)

_OUTCOME = {
    "status": bindparam("b_status"),
    "result": bindparam("b_result"),
    "error": bindparam("b_error"),
    "error_kind": bindparam("b_error_kind"),
    "traceback": bindparam("b_traceback"),
    "started_at": bindparam("b_started_at"),
    "finished_at": bindparam("b_finished_at"),
    "duration_s": bindparam("b_duration_s"),
    "host": bindparam("b_host"),
    **_NO_LEASE,
}

#: an outcome of a trial that ``held_by_lease`` found held
record_outcome = update(trials).where(trials.c.id == bindparam("b_id")).values(_OUTCOME)

#: an outcome written only if the lease still holds the trial, checked by the UPDATE itself
record_fenced_outcome = (
    update(trials)
    .where(
        trials.c.id == bindparam("b_id"),
        trials.c.status == RUNNING,
        trials.c.lease_owner == bindparam("b_owner"),
    )
    .values(_OUTCOME)
)

#: A batch of outcomes as one UPDATE from the batch as one JSON text: for the server one
#: statement to plan and run where executemany runs one per outcome (1,000 outcomes: a
#: fifth of the time on PostgreSQL, a third on MariaDB), and for the client one json.dumps
#: in C. Each JSON object's keys are the binds of record_outcome (b_id, b_status, ...), so
#: the rows executemany would take go in as they are. ``fenced`` as record_fenced_outcome.
OUTCOME_COLUMNS = {
    "id": BigInteger,
    "status": Text,
    "result": Text,
    "error": Text,
    "error_kind": Text,
    "traceback": Text,
    "started_at": Double,
    "finished_at": Double,
    "duration_s": Double,
    "host": Text,
}
#: MariaDB's JSON_TABLE names its columns' types in SQL
_MARIADB_TYPES = {BigInteger: "BIGINT", Text: "LONGTEXT", Double: "DOUBLE"}


@cache
def record_outcomes_from_json(kind: str, fenced: bool):
    columns = [column(f"b_{name}", t) for name, t in OUTCOME_COLUMNS.items()]
    if kind == "postgresql":
        given = func.json_to_recordset(bindparam("b_outcomes", type_=JSON))
        given = given.table_valued(*columns).render_derived(name="given", with_types=True)
    else:  # MariaDB 10.6+: JSON_TABLE has no SQLAlchemy construct; only names are spliced
        paths = ", ".join(
            f"{c.name} {_MARIADB_TYPES[type(c.type)]} PATH '$.{c.name}'" for c in columns
        )
        given = (
            text(f"SELECT * FROM JSON_TABLE(:b_outcomes, '$[*]' COLUMNS({paths})) AS outcomes")
            .bindparams(bindparam("b_outcomes", type_=JSON))
            .columns(*columns)
            .subquery("given")
        )
    where = [trials.c.id == given.c.b_id]
    if fenced:
        where += [trials.c.status == RUNNING, trials.c.lease_owner == bindparam("b_owner")]
    values = {name: given.c[f"b_{name}"] for name in OUTCOME_COLUMNS if name != "id"}
    return update(trials).where(*where).values({**values, **_NO_LEASE})


insert_metric = metrics.insert()

held_by_owner = and_(trials.c.status == RUNNING, trials.c.lease_owner == bindparam("p_owner"))

release_all = (
    update(trials)
    .where(held_by_owner)
    .values(status=PENDING, attempts=trials.c.attempts - 1, **_NO_LEASE)
)
release_some = (
    update(trials)
    .where(held_by_owner, trials.c.id.in_(bindparam("p_ids", expanding=True)))
    .values(status=PENDING, attempts=trials.c.attempts - 1, **_NO_LEASE)
)

#: a running trial, said so that the (partial) lease index finds it: only a running trial
#: has a lease, so this reads the running trials, not the whole table
_running = and_(trials.c.lease_owner.isnot(None), trials.c.status == RUNNING)


@cache
def running_holders(kind: str):
    """Who holds running trials: host, pid, and whether any of its leases expired."""
    expired = func.max(case((trials.c.lease_expires_at < dialects.now(kind), 1), else_=0))
    return (
        select(trials.c.lease_host, trials.c.lease_pid, expired)
        .where(_running)
        .group_by(trials.c.lease_host, trials.c.lease_pid)
    )


@cache
def registered_workers(kind: str):
    """Every registered worker: host, pid, and whether it has been silent for an hour."""
    silent = case((workers.c.heartbeat_at < dialects.now(kind) - 3600, 1), else_=0)
    return select(workers.c.host, workers.c.pid, silent)


reset_trials = (
    update(trials)
    .where(
        trials.c.experiment_id == bindparam("p_experiment_id"),
        trials.c.status.in_(bindparam("p_statuses", expanding=True)),
    )
    .values(
        status=PENDING,
        attempts=0,
        result=None,
        error=None,
        error_kind=None,
        traceback=None,
        started_at=None,
        finished_at=None,
        duration_s=None,
        host=None,
        **_NO_LEASE,
    )
)

metrics_of_experiment = (
    select(
        metrics.c.trial_id,
        metrics.c.attempt,
        metrics.c.step,
        metrics.c.name,
        metrics.c.value,
        metrics.c.logged_at,
    )
    .join(trials, trials.c.id == metrics.c.trial_id)
    .where(trials.c.experiment_id == bindparam("p_experiment_id"))
    .order_by(metrics.c.trial_id, metrics.c.id)
)

trial_is_held = select(trials.c.id).where(trials.c.id == bindparam("p_trial_id"), held_by_owner)
checkpoint_of_trial = select(checkpoints.c.data).where(
    checkpoints.c.trial_id == bindparam("p_trial_id")
)


@cache
def register_worker(kind: str):
    """Register a worker, or refresh it: a registration retried after its reply was lost
    must not fail."""
    values = {name: bindparam(name) for name in records.WORKER_COLUMNS}
    return dialects.upsert(kind, workers, ["owner"], values)


delete_worker = delete(workers).where(workers.c.owner == bindparam("p_owner"))
all_workers = select(workers).order_by(workers.c.heartbeat_at.desc())


#: what a claim hands back for each trial, in this order
CLAIMED_COLUMNS = (
    trials.c.id,
    trials.c.experiment_id,
    trials.c.params,
    trials.c.repetition,
    trials.c.seed,
    trials.c.attempts,
)


@cache
def claim_returning(kind: str, by_experiment: bool, skip_locked: bool):
    """UPDATE ... RETURNING that claims the oldest pending trials (SQLite, PostgreSQL)."""
    return (
        update(trials)
        .where(
            trials.c.id.in_(
                _oldest_pending(
                    (trials.c.id,), by_experiment, lock=skip_locked, skip_locked=skip_locked
                )
            )
        )
        .values(_claim_values(kind))
        .returning(*CLAIMED_COLUMNS)
    )


@cache
def claim_select(by_experiment: bool, skip_locked: bool):
    """The locking SELECT of a two-step claim (MySQL/MariaDB)."""
    # a server without SKIP LOCKED still locks the rows: claims then wait, but stay atomic
    return _oldest_pending(CLAIMED_COLUMNS, by_experiment, lock=True, skip_locked=skip_locked)


@cache
def claim_update(kind: str):
    """The UPDATE of a two-step claim, over the ids the SELECT locked."""
    return (
        update(trials)
        .where(trials.c.id.in_(bindparam("p_ids", expanding=True)), trials.c.status == PENDING)
        .values(_claim_values(kind))
    )


def _oldest_pending(columns: tuple, by_experiment: bool, *, lock: bool, skip_locked: bool):
    """The oldest pending trials (of some experiments), optionally locked."""
    query = select(*columns).where(trials.c.status == PENDING)
    if by_experiment:
        query = query.where(
            trials.c.experiment_id.in_(bindparam("p_experiment_ids", expanding=True))
        )
    query = query.order_by(trials.c.id).limit(bindparam("p_limit"))
    if lock:
        query = query.with_for_update(skip_locked=skip_locked)
    return query


def _claim_values(kind: str) -> dict:
    return {
        "status": RUNNING,
        "attempts": trials.c.attempts + 1,
        "max_attempts": bindparam("p_max_attempts"),
        "lease_owner": bindparam("p_owner"),
        "lease_host": bindparam("p_host"),
        "lease_pid": bindparam("p_pid"),
        "lease_expires_at": dialects.now(kind) + bindparam("p_lease_s"),
    }


@cache
def heartbeat_trials(kind: str):
    return (
        update(trials)
        .where(held_by_owner)
        .values(lease_expires_at=dialects.now(kind) + bindparam("p_lease_s"))
    )


@cache
def heartbeat_worker(kind: str):
    return (
        update(workers)
        .where(workers.c.owner == bindparam("p_owner"))
        .values(heartbeat_at=dialects.now(kind))
    )


@cache
def lost_condition(kind: str):
    """A running trial whose lease expired, or whose holder on this host is dead."""
    return and_(
        _running,
        or_(
            trials.c.lease_expires_at < dialects.now(kind),
            and_(
                trials.c.lease_host == bindparam("p_host"),
                trials.c.lease_pid.in_(bindparam("p_dead_pids", expanding=True)),
            ),
        ),
    )


@cache
def fail_lost(kind: str):
    return (
        update(trials)
        .where(lost_condition(kind), trials.c.attempts >= trials.c.max_attempts + LOST_ALLOWANCE)
        .values(
            status=FAILED,
            error_kind="lost",
            error=(
                "the process running this trial died or stopped heartbeating on each of "
                "its attempts; fix the cause, then `sweeplab reset NAME --status failed`"
            ),
            finished_at=dialects.now(kind),
            **_NO_LEASE,
        )
    )


@cache
def requeue_lost(kind: str):
    return update(trials).where(lost_condition(kind)).values(status=PENDING, **_NO_LEASE)


@cache
def forget_dead_workers(kind: str):
    """Worker rows of dead local pids, or silent for an hour."""
    return delete(workers).where(
        or_(
            and_(
                workers.c.host == bindparam("p_host"),
                workers.c.pid.in_(bindparam("p_dead_pids", expanding=True)),
            ),
            workers.c.heartbeat_at < dialects.now(kind) - 3600,
        )
    )
