"""The runner: claim -> dispatch -> record, until no pending trial is left.

It claims batches of pending trials under one lease, submits ``run_batch`` for each to
the backend's executor, records outcomes in batched transactions, keeps the lease alive
from a heartbeat thread, and on Ctrl-C records what finished and hands back the rest.

Batches adapt to the trials: the first holds one trial, later ones aim at
``BATCH_TARGET_S`` of work each, so no-op trials go a thousand to a claim while hour-long
ones go one by one. Outcomes are committed within ``FLUSH_INTERVAL_S`` of finishing, and
at once after a trial longer than ``LONG_TRIAL_S``, so a crash loses at most that much
finished work, and trials of a few tens of milliseconds share their commits.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sweeplab.backends.base import Backend, WorkerCrashed
from sweeplab.errors import BackendError, UsageError
from sweeplab.execution import HOST, Batch, BatchInterrupted, register_sink, run_batch
from sweeplab.store.base import BaseStore, ClaimedTrial, ExperimentRecord, Lease
from sweeplab.target import FunctionRef
from sweeplab.trial import ErrorKind, Outcome, TrialStatus, TrialTask

BATCH_TARGET_S = 0.1
MAX_BATCH = 1000
FLUSH_INTERVAL_S = 0.05
LONG_TRIAL_S = 0.5
PROGRESS_INTERVAL_S = 0.25
CANCEL_GRACE_S = 3.0
#: first wait for trials that other holders are finishing; grows up to ``poll_s``
FIRST_POLL_S = 0.02
#: each later wait is this share of the time waited so far
POLL_GROWTH = 0.25


@dataclass
class Progress:
    """A snapshot of a run for progress displays."""

    experiment: str
    total: int
    done: int
    failed: int
    running: int
    pending: int
    elapsed_s: float
    #: trials finished per second in this run
    rate: float

    @property
    def eta_s(self) -> float | None:
        return self.pending / self.rate if self.rate > 0 else None


@dataclass
class RunReport:
    """What one ``run`` did."""

    experiment: str
    backend: str
    #: trials that finished in this run, by how they ended
    done: int = 0
    failed: int = 0
    #: failed attempts that were sent back for a retry
    retried: int = 0
    interrupted: bool = False
    duration_s: float = 0.0
    #: the experiment's trials by status after the run
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every trial of the experiment is done."""
        return not self.interrupted and all(
            n == 0 for status, n in self.counts.items() if status != str(TrialStatus.DONE)
        )


def check_run_options(
    timeout: float | None, retries: int, max_trials: int | None, lease: float
) -> None:
    """Refuse options no run can use, before anything is written."""
    if timeout is not None and not timeout > 0:
        raise UsageError(f"timeout={timeout!r}: give a positive number of seconds")
    if max_trials is not None and max_trials < 1:
        raise UsageError(f"max_trials={max_trials!r}: give 1 or more")
    if retries < 0:
        raise UsageError(f"retries={retries!r}: give 0 or more")
    if not lease > 0:
        raise UsageError(f"lease={lease!r}: give a positive number of seconds, e.g. 60")


def poll_delay(waited_s: float, poll_s: float) -> float:
    """How long to sleep before looking again, after ``waited_s`` of waiting for trials
    that others hold: short at first, since they usually finish within moments, then a
    quarter of the wait so far, up to ``poll_s``. So the end is seen at most a quarter
    late: a worker asleep past it holds up whoever waits for it to exit."""
    return min(poll_s, max(FIRST_POLL_S, POLL_GROWTH * waited_s))


class _BatchSizer:
    """Aims each batch at BATCH_TARGET_S of work from the mean trial duration seen so far."""

    def __init__(self) -> None:
        self.size = 1
        self._mean_s: float | None = None

    def observe(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        mean = sum(o.duration_s for o in outcomes) / len(outcomes)
        self._mean_s = mean if self._mean_s is None else 0.7 * self._mean_s + 0.3 * mean
        wanted = int(BATCH_TARGET_S / max(self._mean_s, 1e-6))
        self.size = max(1, min(MAX_BATCH, wanted, self.size * 4))


class Runner:
    """Runs pending trials of some experiments (or all of a store's) on one backend.

    With ``wait=False`` it returns when nothing is pending and no other holder is
    running trials of those experiments: trials of a holder that dies come back when
    its lease expires, and this runner takes them, so the work is finished as long as
    one runner survives. With ``wait=True`` it keeps polling for new trials until it
    is interrupted (a worker that waits for work).
    """

    def __init__(
        self,
        store: BaseStore,
        backend: Backend,
        *,
        experiments: Sequence[ExperimentRecord] | None = None,
        functions: Mapping[int, FunctionRef] | None = None,
        timeout_s: float | None = None,
        retries: int = 0,
        max_trials: int | None = None,
        lease_s: float = 60.0,
        wait: bool = False,
        poll_s: float = 1.0,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        if not backend.in_process and not store.shared_across_processes:
            raise BackendError(
                f"backend {backend.name!r} runs trials in other processes, which cannot see "
                f"the {store.display_url} store: use a sqlite:///FILE store, or backend='threads'"
            )
        self.store = store
        self.backend = backend
        self._chosen = None if experiments is None else [e.id for e in experiments]
        #: experiments still worth claiming from, oldest first; one at a time keeps each
        #: claim on the (experiment, status, id) index
        self._claimable: list[int] = []
        self._experiments = {e.id: e for e in experiments or []}
        self._functions = dict(functions or {})
        self.timeout_s = timeout_s
        self.max_attempts = 1 + max(0, int(retries))
        self.max_trials = max_trials
        self.lease_s = float(lease_s)
        self.wait = wait
        self.poll_s = poll_s
        self.on_progress = on_progress
        self.lease = Lease.for_this_process()
        label = ", ".join(e.name for e in experiments) if experiments else "all experiments"
        self.report = RunReport(label, backend.name)
        self._sizer = _BatchSizer()
        self._inflight: dict[cf.Future, tuple[TrialTask, ...]] = {}
        self._experiment_of: dict[cf.Future, int] = {}
        self._solo: list[tuple[int, TrialTask]] = []
        #: (trial, attempt) of lone trials an engine lost once: their next run is their last
        self._lost_once: set[tuple[int, int]] = set()
        #: batches in flight per slot: one running and one queued behind it, until an engine
        #: loses a batch; then one, so no trial waits in a process that another may kill
        self._depth = 2  # trials of a lost batch, one at a time
        self._unrecorded: list[Outcome] = []
        self._last_flush = time.monotonic()
        self._claimed = 0
        self._exhausted = False
        #: when this runner last found nothing to claim and nothing of its own running
        self._idle_since: float | None = None
        #: the KeyboardInterrupt (or subclass, for SIGTERM) that stopped the run
        self.interruption: KeyboardInterrupt | None = None

    def run(self) -> RunReport:
        with _older_objects_frozen():
            return self._run()

    def _run(self) -> RunReport:
        started = time.monotonic()
        store, lease = self.store, self.lease
        store.reclaim(lease.host, _pid_alive)
        # the counts are read for a display and for sharing the tail between slots; a serial
        # run without a display skips the read
        needs_counts = self.on_progress is not None or self.backend.slots > 1
        counts = self._counts() if needs_counts else dict.fromkeys(TrialStatus, 0)
        self._progress = _ProgressTracker(self.report.experiment, counts, self.on_progress)
        register_sink(self._store_key(), store)
        store.register_worker(lease, self.backend.slots, self.backend.name)
        try:
            try:
                executor = self.backend.start()
                with _Heartbeat(store, lease, self.lease_s):
                    try:
                        self._loop(executor)
                        self._flush()
                    except KeyboardInterrupt as exc:
                        with _sigint_ignored():
                            self._cancel()
                        self.report.interrupted = True
                        self.interruption = exc
                        return self.report
            except BaseException:
                with contextlib.suppress(Exception):
                    self.backend.stop(cancel=True)  # nothing of the engine outlives a failure
                raise
            self.backend.stop(cancel=False)
        finally:
            with _sigint_ignored():
                store.release(lease)
                store.unregister_worker(lease)
            self.report.duration_s = time.monotonic() - started
            self.report.counts = {str(s): n for s, n in self._counts().items()}
            self._progress.finish()
        return self.report

    def _store_key(self) -> str:
        return getattr(self.store, "url_for_workers", None) or self.store.display_url

    def _experiment_ids(self) -> list[int]:
        """The experiments this runner works on: those chosen, or every one there is now."""
        return (
            self._chosen if self._chosen is not None else [e.id for e in self.store.experiments()]
        )

    def _counts(self) -> dict[TrialStatus, int]:
        total = dict.fromkeys(TrialStatus, 0)
        for experiment_id in self._experiment_ids():
            for status, n in self.store.counts(experiment_id).items():
                total[status] += n
        return total

    def _function(self, experiment_id: int) -> FunctionRef:
        ref = self._functions.get(experiment_id)
        if ref is None:
            record = self._experiments.get(experiment_id)
            if record is None:  # added to the store after this runner started
                self._experiments = {e.id: e for e in self.store.experiments()}
                record = self._experiments[experiment_id]
            ref = self._functions[experiment_id] = FunctionRef(
                record.target, record.function_pickle
            )
        return ref

    # -- the loop ------------------------------------------------------------------
    def _loop(self, executor: cf.Executor) -> None:
        while True:
            self._fill(executor)
            if not self._inflight:
                self._flush()  # our own finished trials must not look like others' running ones
                if not self._should_wait():
                    return
                now = time.monotonic()
                if self._idle_since is None:
                    self._idle_since = now
                time.sleep(poll_delay(now - self._idle_since, self.poll_s))
                self._exhausted = False
                self._progress.tick()
                continue
            timeout = PROGRESS_INTERVAL_S
            if self._unrecorded:  # wake up in time to commit them
                since = time.monotonic() - self._last_flush
                timeout = max(0.0, min(timeout, FLUSH_INTERVAL_S - since))
            self._idle_since = None
            done, _ = cf.wait(self._inflight, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            for future in done:
                self._collect(future, self._inflight.pop(future))
            if self._unrecorded and (
                time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S or not self._inflight
            ):
                self._flush()
            self._progress.tick()

    def _should_wait(self) -> bool:
        """Nothing to claim now: wait for trials that other holders still run, or for more."""
        if self.max_trials is not None and self._claimed >= self.max_trials:
            return False
        if self.wait:
            return True
        # holding nothing now, so any trial still under this lease is a claim whose commit
        # reply was lost to a dropped connection: hand it back rather than wait on it
        self.store.release(self.lease)
        # running here means held by someone else: this runner holds nothing now
        return any(self.store.unfinished(i) for i in self._experiment_ids())

    def _fill(self, executor: cf.Executor) -> None:
        """Keep every slot busy and one batch queued behind each."""
        cap = self._depth * self.backend.slots
        if any(len(t) == 1 and _key(t[0]) in self._lost_once for t in self._inflight.values()):
            return  # a last chance is running: nothing beside it
        while self._solo and len(self._inflight) < cap:
            experiment_id, task = self._solo[0]
            if _key(task) in self._lost_once:
                # its last chance runs alone on the engine, so that nothing but itself can
                # kill the worker under it; the rest waits until it is over
                if not self._inflight:
                    self._solo.pop(0)
                    self._submit(executor, experiment_id, (task,))
                return
            self._solo.pop(0)
            self._submit(executor, experiment_id, (task,))
        while not self._exhausted and len(self._inflight) < cap:
            limit = self._sizer.size
            if self.backend.slots > 1:
                # Near the end, smaller batches: every slot gets a share of what is left, so
                # no slot runs a last big batch while the others idle. (Only this runner's view:
                # other workers may take some, which makes batches smaller, never larger.)
                unclaimed = self._progress.pending - max(self._progress.held, 0)
                if unclaimed > 0:  # else the count is stale (trials added since): no cap
                    limit = min(limit, max(1, unclaimed // (2 * self.backend.slots)))
            if self.max_trials is not None:
                limit = min(limit, self.max_trials - self._claimed)
                if limit <= 0:
                    self._exhausted = True
                    return
            claimed = self._claim(limit)
            if not claimed:
                self._exhausted = True
                return
            self._claimed += len(claimed)
            self._progress.claimed(len(claimed))
            by_experiment: dict[int, list[TrialTask]] = {}
            for c in claimed:
                by_experiment.setdefault(c.experiment_id, []).append(c.task)
            for experiment_id, tasks in by_experiment.items():
                self._submit(executor, experiment_id, tuple(tasks))

    def _claim(self, limit: int) -> list[ClaimedTrial]:
        if not self._claimable:  # (re)start the round over every chosen experiment
            if self._chosen is not None:
                self._claimable = list(self._chosen)
            else:
                self._claimable = [e.id for e in self.store.experiments()]
        while self._claimable:
            claimed = self.store.claim(
                self.lease, limit, self.lease_s, self.max_attempts, self._claimable[:1]
            )
            if claimed:
                return claimed
            self._claimable.pop(0)
        return []

    def _submit(
        self, executor: cf.Executor, experiment_id: int, tasks: tuple[TrialTask, ...]
    ) -> None:
        batch = Batch(
            self._function(experiment_id),
            tasks,
            self.lease.owner,
            self._store_key(),
            self.timeout_s,
        )
        try:
            future = executor.submit(run_batch, batch)
        except BatchInterrupted as exc:  # an inline executor was running it
            self._accept(tasks, exc.outcomes)
            raise KeyboardInterrupt from exc
        self._inflight[future] = tasks
        self._experiment_of[future] = experiment_id
        if future.done():  # an inline executor ran it already: record without waiting
            self._collect(future, self._inflight.pop(future))
            if self._unrecorded and time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
                self._flush()
            self._progress.tick()

    # -- outcomes --------------------------------------------------------------------
    def _collect(self, future: cf.Future, tasks: tuple[TrialTask, ...]) -> None:
        experiment_id = self._experiment_of.pop(future)
        try:
            outcomes = future.result()
        except BatchInterrupted as exc:
            self._accept(tasks, exc.outcomes)
            raise KeyboardInterrupt from exc
        except WorkerCrashed as exc:
            self._crashed(tasks, exc)
            return
        except Exception as exc:
            self._lost(experiment_id, tasks, exc)
            return
        self._accept(tasks, outcomes)

    def _accept(self, tasks: tuple[TrialTask, ...], outcomes: list[Outcome]) -> None:
        self._sizer.observe(outcomes)
        attempts = {t.id: t.attempt for t in tasks}
        for o in outcomes:
            if o.status is TrialStatus.FAILED and attempts[o.trial_id] < self.max_attempts:
                o.status = TrialStatus.PENDING
                self.report.retried += 1
            elif o.status is TrialStatus.FAILED:
                self.report.failed += 1
            else:
                self.report.done += 1
        self._unrecorded.extend(outcomes)
        self._progress.finished(outcomes)
        if outcomes and outcomes[-1].duration_s >= LONG_TRIAL_S:
            self._flush()  # a long trial's outcome is committed at once

    def _crashed(self, tasks: tuple[TrialTask, ...], exc: WorkerCrashed) -> None:
        """Record what finished, blame the trial that was running, hand back the rest."""
        self._accept(tasks, exc.outcomes)
        rest = list(tasks[len(exc.outcomes) :])
        if exc.running_index is not None and rest:
            culprit = rest.pop(0)
            kind = ErrorKind.TIMEOUT if exc.timed_out else ErrorKind.CRASH
            failure = _failure(culprit, kind, exc.cause, exc.running_since)
            self._accept((culprit,), [failure])
        if rest:
            self._flush()
            self.store.release(self.lease, [t.id for t in rest])
            self._progress.released(len(rest))
            self._exhausted = False

    def _lost(self, experiment_id: int, tasks: tuple[TrialTask, ...], exc: Exception) -> None:
        """The engine lost a batch without saying why: run its trials one at a time.

        A lone trial lost once may only have been queued in a process that another trial
        killed, so it gets one more run, with nothing else running, before it is blamed.
        """
        self._depth = 1
        if len(tasks) > 1 or _key(tasks[0]) not in self._lost_once:
            self._lost_once.update(_key(t) for t in tasks if len(tasks) == 1)
            self._solo.extend((experiment_id, t) for t in tasks)
            return
        cause = f"{type(exc).__name__}: {exc}".strip()
        self._accept(tasks, [_failure(tasks[0], ErrorKind.CRASH, f"crash: {cause}")])

    def _flush(self) -> None:
        if self._unrecorded:
            self.store.record(self.lease, self._unrecorded)
            self._unrecorded = []
        self._last_flush = time.monotonic()

    def _cancel(self) -> None:
        """Ctrl-C: stop the trials, record those that finished, hand back the others."""
        self.backend.stop(cancel=True)
        done, _ = cf.wait(self._inflight, timeout=CANCEL_GRACE_S)
        for future in done:
            tasks = self._inflight.pop(future)
            with contextlib.suppress(KeyboardInterrupt):
                self._collect(future, tasks)
        self._flush()


def _key(task: TrialTask) -> tuple[int, int]:
    """A trial's attempt: a retry after a blamed crash starts with a clean slate."""
    return task.id, task.attempt


def _failure(
    task: TrialTask, kind: ErrorKind, cause: str, started_at: float | None = None
) -> Outcome:
    """A trial that could not report for itself; ``started_at`` is known to local pools."""
    now = time.time()
    return Outcome(
        task.id,
        TrialStatus.FAILED,
        error=cause,
        error_kind=kind,
        started_at=started_at or now,
        duration_s=now - started_at if started_at else 0.0,
        host=HOST if started_at else "",
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep what existed before the run out of the cyclic garbage collector's sight.

    The store, SQLAlchemy's caches, imported modules and the user's data outlive the run;
    a full collection walks all of them (about 20 ms with SQLAlchemy loaded), and short
    trials allocate fast enough to trigger one every few hundred trials. Garbage that
    trials make is still collected; the frozen objects return to the collector after.
    """
    if gc.get_freeze_count():  # the application froze its own (a pre-fork server), or a
        yield  # run is already under way in this process: leave it to them
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Let clean-up finish even if Ctrl-C is pressed again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Heartbeat:
    """Extends the lease, and frees the trials of dead holders, every third of a lease."""

    def __init__(self, store: BaseStore, lease: Lease, lease_s: float) -> None:
        self._store, self._lease, self._lease_s = store, lease, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="sweeplab-heartbeat")

    def _beat(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            with contextlib.suppress(Exception):  # a missed beat is retried at the next one
                self._store.heartbeat(self._lease, self._lease_s)
                # trials of holders that died anywhere come back once their lease expires
                self._store.reclaim(self._lease.host, _pid_alive)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _ProgressTracker:
    """Counts trials as they move, and calls the display at most every PROGRESS_INTERVAL_S."""

    def __init__(
        self,
        experiment: str,
        counts: dict[TrialStatus, int],
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.experiment = experiment
        self.total = sum(counts.values())
        self.done = counts[TrialStatus.DONE]
        self.failed = counts[TrialStatus.FAILED]
        self.pending = counts[TrialStatus.PENDING] + counts[TrialStatus.RUNNING]
        self.finished_here = 0
        self.held = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._on_progress = on_progress

    def claimed(self, n: int) -> None:
        self.held += n

    def released(self, n: int) -> None:
        self.held -= n

    def finished(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            self.held -= 1
            if o.status is TrialStatus.PENDING:
                continue  # to be retried: still pending
            self.pending -= 1
            self.finished_here += 1
            if o.status is TrialStatus.DONE:
                self.done += 1
            else:
                self.failed += 1

    def tick(self, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            elapsed = now - self.started
            self._on_progress(
                Progress(
                    experiment=self.experiment,
                    total=self.total,
                    done=self.done,
                    failed=self.failed,
                    running=max(self.held, 0),
                    pending=max(self.pending - max(self.held, 0), 0),
                    elapsed_s=elapsed,
                    rate=self.finished_here / elapsed if elapsed > 0 else 0.0,
                )
            )

    def finish(self) -> None:
        self.tick(force=True)
