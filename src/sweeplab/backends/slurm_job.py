"""What runs inside a SLURM job: a batch of trials, or a pull worker, that stops on
SLURM's signals as on Ctrl-C and requeues itself through submitit on the time-limit one.

Kept apart from ``slurm.py`` (the submitter's side): this half is what submitit pickles
into every job.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweeplab.errors import BackendError
from sweeplab.execution import Batch, run_batch
from sweeplab.trial import Outcome

if TYPE_CHECKING:
    from sweeplab.backends.slurm import _Submission


def _submitit() -> Any:
    try:
        import submitit
    except ImportError as exc:
        raise BackendError('backend "slurm" needs an extra: pip install "sweeplab[slurm]"') from exc
    return submitit


@dataclass
class _BatchResult:
    #: outcomes of each batch of the job, in order; the last may be partial, later ones absent
    outcomes: list[list[Outcome]]
    #: why the job stopped part-way ("" when it ran everything)
    cause: str = ""


class _JobStop:
    """In a job's main thread: SIGTERM and the time-limit signal become one Ctrl-C.

    SLURM sends them to every process of the job. This process takes the first and
    interrupts its main thread once, so the runner stops, records and hands back as on
    Ctrl-C; later ones are ignored. They are blocked from now on in this thread, and so
    in the threads it starts and in the processes those start (the processes backend's
    trials), which would die of them; one thread takes them with ``sigwait``. A thread
    some library started earlier may still catch one: the Python handler does the same.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._lock = threading.Lock()
        self._submitit_handler: Any = None

    def install(self) -> _JobStop:
        if threading.current_thread() is not threading.main_thread():
            return self  # not a job's main thread (a test calling the job): nothing to take
        # submitit asks SLURM for this signal ahead of the time limit (USR2 by default)
        timeout_signal = getattr(signal, "SIG" + _submitit().JobEnvironment.USR_SIG)
        self._submitit_handler = signal.getsignal(timeout_signal)
        watched = {signal.SIGTERM, timeout_signal}
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in watched:
            signal.signal(signum, self._on_signal)
        signal.pthread_sigmask(signal.SIG_BLOCK, watched)
        main = threading.get_ident()

        def take() -> None:
            while True:
                signum = signal.sigwait(watched)
                if self._first(signum):
                    signal.pthread_kill(main, signal.SIGINT)

        threading.Thread(target=take, daemon=True, name="sweeplab-signals").start()
        return self

    def _first(self, signum: int) -> bool:
        with self._lock:
            if self.signum is not None:
                return False
            self.signum = signum
            return True

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._first(signum):
            raise KeyboardInterrupt

    @property
    def cause(self) -> str:
        if self.signum is None:
            return "interrupted"
        return f"the job got {signal.Signals(self.signum).name}"

    def requeue(self) -> None:
        """After the time-limit (or preemption) signal: let submitit checkpoint and requeue.

        submitit calls the job's ``checkpoint()``, requeues the job and exits; it raises
        when the job may not be requeued (timed out too often), and then this returns.
        """
        if self.signum in (None, signal.SIGTERM) or not callable(self._submitit_handler):
            return
        try:
            self._submitit_handler(self.signum, None)
        except Exception:
            return  # not requeued: the job ends with what it has


class _Checkpointable:
    """submitit requeues a job whose callable has ``checkpoint`` (its Checkpointable)."""

    def checkpoint(self) -> Any:
        return _submitit().helpers.DelayedSubmission(self)


class _BatchJob(_Checkpointable):
    """Runs the runner's batches one after another; a requeued job goes on where it stopped."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches
        self.outcomes: list[list[Outcome]] = []

    def __call__(self) -> _BatchResult:
        stop = _JobStop().install()
        try:
            for i, batch in enumerate(self.batches):
                if i == len(self.outcomes):
                    self.outcomes.append([])
                done = self.outcomes[i]
                rest = batch.tasks[len(done) :]
                if rest:
                    run_batch(dataclasses.replace(batch, tasks=rest), done.append)
        except KeyboardInterrupt:
            stop.requeue()
            return _BatchResult(self.outcomes, stop.cause)
        return _BatchResult(self.outcomes)


class _Call:
    """Any other call submitted to the pool: one job, no packing, no requeue."""

    def __init__(self, submission: _Submission) -> None:
        self.fn, self.args, self.kwargs = submission.fn, submission.args, submission.kwargs

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


class _PullWorker(_Checkpointable):
    """``sweeplab.work`` in a job: claims, heartbeats and records in the store itself."""

    def __init__(
        self,
        store_url: str,
        experiments: list[str],
        slots: int,
        backend: str,
        resources: dict[str, float] | None,
        max_trials: int | None,
        work_options: dict[str, Any],
    ) -> None:
        self.store_url = store_url
        self.experiments = experiments
        self.slots = slots
        self.backend = backend
        self.resources = resources
        self.max_trials = max_trials
        self.work_options = work_options

    def __call__(self) -> dict[str, int]:
        from sweeplab.backends import make_backend
        from sweeplab.experiments import RunInterrupted
        from sweeplab.worker import work

        # only the processes backend places trials by resources (GPUs among the job's)
        use_resources = self.resources and self.backend == "processes"
        options = {"resources": self.resources} if use_resources else {}
        stop = _JobStop().install()
        try:
            report = work(
                self.store_url,
                backend=make_backend(self.backend, self.slots, **options),
                experiments=self.experiments,
                max_trials=self.max_trials,
                **self.work_options,
            )
        except KeyboardInterrupt as exc:
            if isinstance(exc, RunInterrupted) and self.max_trials is not None:
                self.max_trials -= exc.report.done + exc.report.failed + exc.report.retried
            if self.max_trials is None or self.max_trials > 0:
                stop.requeue()  # the requeued job runs what is left of max_trials
            return {"interrupted": 1}
        return {"done": report.done, "failed": report.failed}
