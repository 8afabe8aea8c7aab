"""``Experiment``: a function, a name and a store; the user's entry point.

(The module's name is plural because ``sweeplab.experiment`` is the decorator: a
submodule of that name would replace it on the package once imported.)

exp = sl.Experiment(simulate, store="sqlite:///runs.db")
exp.add(sl.grid(n=[10, 20], algo=["ga", "sa"]), repeat=5)
exp.run(backend="processes", workers=2)
exp.results()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sweeplab.errors import SpaceError, TargetError, UsageError
from sweeplab.space import PointKeys, Space, as_space, canonical_point, trial_seed
from sweeplab.store import BaseStore, open_store
from sweeplab.store.base import ExperimentRecord, NewTrial
from sweeplab.target import FunctionRef, Signature
from sweeplab.trial import Trial, TrialRecord, TrialStatus, TrialTask

if TYPE_CHECKING:
    import pandas as pd

    from sweeplab.backends import Backend
    from sweeplab.runner import Progress, RunReport

# The runner and the backends load when a run starts: importing sweeplab (as every
# worker process does) stays cheap.


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; finished trials are recorded, the rest are pending again."""

    def __init__(self, report: RunReport) -> None:
        super().__init__()
        self.report = report


class Experiment:
    """A function run over a parameter space, with every trial kept in a store.

    ``store`` is a URL (default: ``SWEEPLAB_STORE``, else ``sqlite:///sweeplab.db``) or
    an open store; ``name`` defaults to the function's name.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        store: str | BaseStore | None = None,
        *,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        if not callable(fn):
            raise TargetError(f"Experiment needs a function, not a {type(fn).__name__}")
        self.fn: Callable[..., Any] | None = fn
        self.name = name or getattr(fn, "__name__", None) or "experiment"
        self._store_arg = store
        self._store: BaseStore | None = None
        self._record: ExperimentRecord | None = None
        self._signature = Signature.of(fn)
        #: what each trial needs, e.g. {"cpus": 2, "gpus": 0.5}; run(resources=...) overrides
        self.resources = dict(resources) if resources else None

    @classmethod
    def open(cls, name: str, store: str | BaseStore | None = None) -> Experiment:
        """An experiment already in the store; its function is found from its record."""
        exp = cls.__new__(cls)
        exp.fn = None
        exp.name = name
        exp._store_arg = store
        exp._store = open_store(store, create=False)
        try:
            exp._record = exp._store.experiment(name)
        except BaseException:
            if exp._store is not store:  # opened here: nobody else can close it
                exp._store.close()
            raise
        exp._signature = None  # type: ignore[assignment]
        exp.resources = None
        return exp

    @property
    def __sweeplab_function__(self) -> Callable[..., Any] | None:
        return self.fn

    # -- plumbing ------------------------------------------------------------------
    @property
    def store(self) -> BaseStore:
        if self._store is None:
            self._store = open_store(self._store_arg)
        return self._store

    def _experiment(self) -> ExperimentRecord:
        if self._record is None:
            assert self.fn is not None
            ref = FunctionRef.of(self.fn)
            self._record = self.store.ensure_experiment(self.name, ref.target, ref.pickled)
        return self._record

    def _function(self) -> FunctionRef:
        if self.fn is not None:
            return FunctionRef.of(self.fn)
        record = self._experiment()
        return FunctionRef(record.target, record.function_pickle)

    def _function_signature(self) -> Signature:
        if self._signature is None:
            self._signature = Signature.of(self._function().load())
        return self._signature

    # -- the user's verbs ----------------------------------------------------------
    def add(
        self, space: Space | Mapping[str, Any] | Iterable[Mapping[str, Any]], repeat: int = 1
    ) -> int:
        """Add a trial for every point and repetition not in the store yet; return how many.

        Adding the same space again adds nothing; a larger ``repeat`` adds the missing
        repetitions. Bad points are refused before anything is written.
        """
        space = as_space(space)
        if not isinstance(repeat, int) or repeat < 1:
            raise SpaceError(f"repeat={repeat!r}: give a whole number of repetitions, 1 or more")
        signature = self._function_signature()
        signature.check_names(space.names)
        for point in space.witnesses():
            signature.check_point(point)
            canonical_point(point)
        record = self._experiment()
        name = self.name

        def trials() -> Iterable[NewTrial]:
            keys = PointKeys()
            checked: tuple[str, ...] = ()
            for point in space:
                names = tuple(point)
                if names != checked:  # points of one space mostly share their names
                    signature.check_point(point)
                    checked = names
                text, key = keys(point)
                for rep in range(repeat):
                    yield NewTrial(key, text, rep, trial_seed(name, key, rep))

        return self.store.add_trials(record.id, trials())

    def run(
        self,
        backend: str | Backend = "serial",
        workers: int | None = None,
        *,
        timeout: float | None = None,
        retries: int = 0,
        max_trials: int | None = None,
        lease: float = 60.0,
        progress: bool | Callable[[Progress], None] = False,
        wait: bool = True,
        **backend_options: Any,
    ) -> RunReport:
        """Run the pending trials; return what happened.

        ``workers``: parallel slots (-1 every core, -2 all but one). ``timeout``: seconds
        a trial may run before it is stopped and failed. ``retries``: extra attempts for a
        trial that fails. ``max_trials``: stop after starting this many. ``lease``: seconds
        after which the trials of a runner that stopped heartbeating are free again.
        Ctrl-C records what finished, hands back the rest and raises ``RunInterrupted``.
        ``wait=False`` (dask and ray with ``address=``, slurm): start workers on the
        engine and return at once; they go on after this process exits, and ``wait()``
        or ``status()`` from any process follow them. Other keywords go to the backend:
        ``threads_per_worker=`` and ``address=`` for dask, ``address=`` and ``resources=``
        for ray, and so on.
        """
        from sweeplab.runner import check_run_options

        check_run_options(timeout, retries, max_trials, lease)
        if self.resources and "resources" not in backend_options and isinstance(backend, str):
            backend_options["resources"] = self.resources
        from sweeplab.backends import make_backend
        from sweeplab.runner import Runner, RunReport

        backend_obj = make_backend(backend, workers, **backend_options)
        if not wait:
            return self._submit_workers(backend_obj, timeout, retries, lease)
        if getattr(backend_obj, "serves_only", False):  # an MPI rank other than 0
            backend_obj.serve()  # type: ignore[attr-defined]
            return RunReport(self.name, backend_obj.name)
        if progress is True:
            from sweeplab.cli.progress import ProgressDisplay

            display = ProgressDisplay()
            on_progress: Callable[[Progress], None] | None = display.update
        else:
            display = None
            on_progress = progress or None
        record = self._experiment()
        runner = Runner(
            self.store,
            backend_obj,
            experiments=[record],
            functions={record.id: self._function()},
            timeout_s=timeout,
            retries=retries,
            max_trials=max_trials,
            lease_s=lease,
            on_progress=on_progress,
        )
        try:
            report = runner.run()
        finally:
            if display is not None:
                display.close()
        if report.interrupted:
            raise RunInterrupted(report) from runner.interruption
        return report

    def _submit_workers(
        self, backend: Backend, timeout: float | None, retries: int, lease: float
    ) -> RunReport:
        from sweeplab.runner import RunReport

        submit = getattr(backend, "submit_workers", None)
        if submit is None:
            raise UsageError(
                f"backend {backend.name!r} cannot outlive this process: wait=False needs "
                "dask or ray with address=..., or slurm"
            )
        url = getattr(self.store, "url_for_workers", None)
        if url is None or not self.store.shared_across_processes:
            raise UsageError(f"wait=False needs a store other processes can open, not {url}")
        self._experiment()
        submit(url, [self.name], timeout=timeout, retries=retries, lease=lease)
        report = RunReport(self.name, backend.name)
        report.counts = self.status()
        return report

    def wait(self, timeout: float | None = None, poll: float = 2.0) -> dict[str, int]:
        """Block until no trial is pending or running (work submitted with ``wait=False``).

        Returns the counts by status; raises TimeoutError after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            counts = self.status()
            if counts["pending"] == 0 and counts["running"] == 0:
                return counts
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name!r} still has unfinished trials: {counts}")
            time.sleep(poll)

    def status(self) -> dict[str, int]:
        """How many trials are in each status."""
        return {str(s): n for s, n in self.store.counts(self._experiment().id).items()}

    def reset(self, status: str | Sequence[str] = "failed") -> int:
        """Send trials back to pending: ``failed`` (default), ``running`` (stuck) or ``all``."""
        statuses = _statuses(status)
        return self.store.reset(self._experiment().id, statuses)

    def trials(self, status: str | Sequence[str] | None = None) -> list[TrialRecord]:
        """The trials as frozen records, in the order they were added."""
        statuses = None if status is None else _statuses(status)
        return self.store.trials(self._experiment().id, statuses)

    def trial(self, trial_id: int) -> TrialRecord:
        record = self.store.trial(self._experiment().id, trial_id)
        if record is None:
            raise UsageError(
                f"experiment {self.name!r} has no trial {trial_id}: "
                "`sweeplab results NAME` lists its trial ids"
            )
        return record

    def artifacts(self, trial_id: int) -> dict[str, bytes]:
        """The files a trial saved with ``trial.save_artifact``, by name."""
        return self.store.artifacts(self.trial(trial_id).id)

    def results(self, status: str | Sequence[str] | None = None) -> pd.DataFrame:
        """One row per trial: id, params, repetition, seed, status, result fields, timing, error."""
        from sweeplab.results import results_frame

        statuses = None if status is None else _statuses(status)
        return results_frame(self.store.trial_columns(self._experiment().id, statuses))

    def summary(self, by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """count, mean, std, min, max of every numeric result over the repetitions of each point."""
        from sweeplab.results import summary_frame

        return summary_frame(self.store.trial_columns(self._experiment().id), by)

    def metrics(self) -> pd.DataFrame:
        """Everything trials logged with ``trial.log``, one row per value (long form)."""
        from sweeplab.results import metrics_frame

        experiment_id = self._experiment().id
        return metrics_frame(
            self.store.metrics(experiment_id), self.store.trial_columns(experiment_id)
        )

    def close(self) -> None:
        """Release the store's connections (a store passed in as an object is left open)."""
        if self._store is not None and not isinstance(self._store_arg, BaseStore):
            self._store.close()
            self._store = None

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, **params: Any) -> Any:
        """Call the function directly on one point, outside any store (for quick checks)."""
        fn = self.fn or self._function().load()
        if self._function_signature().wants_trial:
            _, key = canonical_point(params)
            task = TrialTask(0, params, 0, trial_seed(self.name, key, 0), 1)
            return fn(**params, trial=Trial(task))
        return fn(**params)

    def __repr__(self) -> str:
        where = self._store.display_url if self._store else (self._store_arg or "default store")
        return f"<Experiment {self.name!r} in {where}>"


def experiment(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    store: str | BaseStore | None = None,
) -> Any:
    """Decorator form of ``Experiment``: ``@sl.experiment`` or ``@sl.experiment(store=...)``."""
    if fn is not None:
        return Experiment(fn, name=name, store=store)

    def wrap(f: Callable[..., Any]) -> Experiment:
        return Experiment(f, name=name, store=store)

    return wrap


def _statuses(status: str | Sequence[str]) -> list[TrialStatus]:
    names = [status] if isinstance(status, str) else list(status)
    if "all" in names:
        return list(TrialStatus)
    if "stuck" in names:
        names = [n for n in names if n != "stuck"] + ["running"]
    try:
        return [TrialStatus(n) for n in names]
    except ValueError:
        raise UsageError(
            f"unknown status in {names!r}: use pending, running (or stuck), done, failed or all"
        ) from None
