"""The SLURM backend: trials run in SLURM jobs, submitted through submitit.

    exp.run(backend="slurm", workers=4, partition="cpu", timeout_min=60)   # 4 jobs at once
    exp.run(backend="slurm", wait=False, trials_per_job=50)                # returns at once
    exp.wait()                                                             # from any process

``wait=True`` (the runner's path): each batch the runner submits becomes a job, batches
submitted together go as one job array, and ``trials_per_job`` packs batches into a job
until it holds that many trials (set it when trials are short: a job costs seconds to
start). ``workers`` jobs run at once (default 8); further batches wait here.

``wait=False`` (runs that outlive the submitter, epyc's ClusterLab): every job is a pull
worker, ``sweeplab.work`` on ``cpus_per_task`` slots (``worker_backend``: processes or
threads), that claims, heartbeats and records in the store itself. ``submit_workers``
sends one array of them and returns.

Inside a job, SLURM's SIGTERM (``scancel``, preemption) and its time-limit signal stop
the trials as Ctrl-C does: finished outcomes are kept, the others handed back, and they
resume from their checkpoints wherever they run next. On the time-limit (or preemption)
signal the job then checkpoints and requeues itself through submitit. A job killed
outright loses its batch (the runner reruns its trials one by one) or, as a pull worker,
its lease, which expires so that another worker takes the trials.

submitit is imported on first use, so this module loads without the ``slurm`` extra.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeplab.backends.base import Backend, WorkerCrashed
from sweeplab.backends.slurm_job import (
    _BatchJob,
    _BatchResult,
    _Call,
    _PullWorker,
    _submitit,
)
from sweeplab.errors import BackendError
from sweeplab.execution import Batch, run_batch
from sweeplab.trial import TrialStatus

#: jobs at once when ``workers`` is not given
DEFAULT_JOBS = 8
#: how often the submitter looks at its jobs
POLL_S = 0.5
#: batches submitted within this long of each other go in one job array
LINGER_S = 0.2
#: how long a job that SLURM no longer runs may take to show its result file
RESULT_GRACE_S = 10.0
#: how long a cancelled run waits for its jobs to hand back what they finished
CANCEL_WAIT_S = 15.0
#: SLURM states in which a job will not run again
_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL"}
_ENDED |= {"OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "REVOKED", "SPECIAL_EXIT"}


class JobLost(BackendError):
    """A SLURM job ended without a result: killed, timed out, out of memory, or failed."""


@dataclass(frozen=True)
class _JobSpec:
    """What every job asks SLURM for, in submitit's terms."""

    folder: Path
    parameters: dict[str, Any]

    def executor(self, **overrides: Any) -> Any:
        submitit = _submitit()
        if shutil.which("sbatch") is None or shutil.which("srun") is None:
            raise BackendError(
                "backend 'slurm' needs SLURM's sbatch and srun on PATH: run from a node of the "
                "cluster (scripts/slurm.sh starts a one-node cluster on this machine)"
            )
        executor = submitit.SlurmExecutor(folder=self.folder / "%j")
        executor.update_parameters(**{**self.parameters, **overrides})
        return executor


class SlurmBackend(Backend):
    """``workers``: jobs at once. Each job asks for ``cpus_per_task`` CPUs (its slots when
    it is a pull worker), ``gpus_per_node``, ``mem_gb`` and ``timeout_min`` minutes on
    ``partition``; ``slurm_additional_parameters`` adds any sbatch option."""

    name = "slurm"
    #: a trial that kills its job costs that job only
    isolates_crashes = True

    def __init__(
        self,
        workers: int | None = None,
        *,
        partition: str | None = None,
        timeout_min: int = 60,
        cpus_per_task: int | None = None,
        gpus_per_node: int | None = None,
        mem_gb: float | None = None,
        slurm_additional_parameters: Mapping[str, Any] | None = None,
        trials_per_job: int | None = None,
        array_parallelism: int | None = None,
        max_jobs: int | None = None,
        folder: str | os.PathLike[str] = "sweeplab-slurm",
        worker_backend: str = "processes",
        resources: Mapping[str, float] | None = None,
    ) -> None:
        _submitit()
        super().__init__(DEFAULT_JOBS if workers is None else workers)
        for option, value in (("trials_per_job", trials_per_job), ("max_jobs", max_jobs)):
            if value is not None and value < 1:
                raise BackendError(f"{option}={value}: give 1 or more")
        if worker_backend not in ("processes", "threads", "serial"):
            raise BackendError(f"worker_backend={worker_backend!r}: use processes or threads")
        resources = dict(resources or {})
        unknown = set(resources) - {"cpus", "gpus"}
        if unknown:
            raise BackendError(f"unknown resources {sorted(unknown)} for slurm: use cpus, gpus")
        cpus_per_trial = float(resources.get("cpus", 1))
        cpus = cpus_per_task or max(1, math.ceil(cpus_per_trial))
        gpus = gpus_per_node or math.ceil(float(resources.get("gpus", 0))) or None
        parameters: dict[str, Any] = {
            "job_name": "sweeplab",
            "time": int(timeout_min),
            "cpus_per_task": cpus,
            # the time-limit signal comes this long before the end: time to hand back
            "signal_delay_s": max(10, min(90, int(timeout_min) * 60 // 5)),
        }
        if partition:
            parameters["partition"] = partition
        if gpus:
            parameters["gpus_per_node"] = gpus
        if mem_gb:
            parameters["mem"] = f"{int(mem_gb * 1024)}MB"
        if slurm_additional_parameters:
            parameters["additional_parameters"] = dict(slurm_additional_parameters)
        self._spec = _JobSpec(Path(folder).resolve(), parameters)
        self.trials_per_job = trials_per_job
        self.array_parallelism = array_parallelism
        self.max_jobs = max_jobs
        self.worker_backend = worker_backend
        self.resources = resources or None
        #: trials a pull worker job runs at once
        self.job_slots = max(1, math.floor(cpus / max(cpus_per_trial, 1e-9)))
        self._jobs_at_once = self.slots
        # the runner keeps two batches per slot in flight; a job takes trials_per_job
        self.slots = self._jobs_at_once * (trials_per_job or 1)
        self._pool: _JobPool | None = None

    def start(self) -> Executor:
        self._pool = _JobPool(self._spec.executor(), self._jobs_at_once, self.trials_per_job)
        return self._pool

    def stop(self, *, cancel: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)

    def submit_workers(
        self,
        store_url: str,
        experiments: Sequence[str],
        *,
        timeout: float | None = None,
        retries: int = 0,
        lease: float = 60.0,
    ) -> list[str]:
        """Submit pull-worker jobs for the pending trials of ``experiments``; return their ids.

        One job per ``trials_per_job`` pending trials (each stops after that many), or,
        without it, ``workers`` jobs that each run until nothing is left; at most
        ``max_jobs``, and ``array_parallelism`` (default ``workers``) of them at once.
        """
        from sweeplab.store import open_store

        store = open_store(store_url, create=False)
        try:
            pending = sum(
                store.counts(store.experiment(name).id)[TrialStatus.PENDING] for name in experiments
            )
        finally:
            store.close()
        if self.trials_per_job is None:
            count = min(self._jobs_at_once, math.ceil(pending / self.job_slots))
        else:
            count = math.ceil(pending / self.trials_per_job)
        if self.max_jobs is not None:
            count = min(count, self.max_jobs)
        if count == 0:
            return []
        worker = _PullWorker(
            store_url,
            list(experiments),
            self.job_slots,
            self.worker_backend,
            self.resources,
            self.trials_per_job,
            {"timeout": timeout, "retries": retries, "lease": lease},
        )
        executor = self._spec.executor(
            job_name=f"sweeplab-{'+'.join(experiments)}"[:64],
            array_parallelism=self.array_parallelism or self._jobs_at_once,
        )
        jobs = executor.submit_array([worker] * count)
        return [job.job_id for job in jobs]


def submit_workers(experiment_name: str, store_url: str, **slurm_options: Any) -> list[str]:
    """Submit pull-worker jobs for an experiment and return their SLURM job ids at once.

    ``slurm_options`` are SlurmBackend's (``workers``, ``partition``, ``trials_per_job``...)
    plus ``timeout``, ``retries`` and ``lease`` for the workers' runs.
    """
    work_options = {
        k: slurm_options.pop(k) for k in ("timeout", "retries", "lease") if k in slurm_options
    }
    backend = SlurmBackend(slurm_options.pop("workers", None), **slurm_options)
    return backend.submit_workers(store_url, [experiment_name], **work_options)


def wait_until_done(
    store_url: str, experiment_name: str, poll_s: float = 2.0, timeout_s: float | None = None
) -> dict[str, int]:
    """Block until the experiment has no pending or running trial; return its counts.

    Raises TimeoutError after ``timeout_s`` seconds.
    """
    from sweeplab.store import open_store

    store = open_store(store_url, create=False)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        experiment_id = store.experiment(experiment_name).id
        while True:
            counts = {str(s): n for s, n in store.counts(experiment_id).items()}
            if counts["pending"] == 0 and counts["running"] == 0:
                return counts
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{experiment_name!r} still has unfinished trials: {counts}")
            time.sleep(poll_s)
    finally:
        store.close()


# -- the submitter's side of wait=True -----------------------------------------------------
@dataclass
class _Submission:
    future: Future
    fn: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queued_at: float = field(default_factory=time.monotonic)

    @property
    def batch(self) -> Batch | None:
        """The batch, when this is the runner's ``run_batch(batch)`` (those can be packed)."""
        if self.fn is run_batch and len(self.args) == 1 and not self.kwargs:
            return self.args[0] if isinstance(self.args[0], Batch) else None
        return None


@dataclass
class _LiveJob:
    job: Any
    submissions: list[_Submission]
    #: when SLURM was first seen not running it while its result file was missing
    ended_at: float | None = None
    state: str = ""


class _JobPool(Executor):
    """Submits calls as SLURM jobs, at most ``jobs_at_once`` live; one thread watches them.

    Whoever takes a submission out of ``_queue`` or ``_live`` (under the lock) resolves
    its future, so no future is resolved twice.
    """

    def __init__(self, executor: Any, jobs_at_once: int, trials_per_job: int | None) -> None:
        self._executor = executor
        self._jobs_at_once = jobs_at_once
        self._trials_per_job = trials_per_job
        self._lock = threading.Condition()
        self._queue: deque[_Submission] = deque()
        self._live: list[_LiveJob] = []
        self._shutdown = False
        self._cancelling = False
        #: an sbatch failure: the run cannot go on, and the next submit says why
        self._broken: BaseException | None = None
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="sweeplab-slurm")
        self._watcher.start()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._broken is not None:
                raise BackendError(f"submitting to SLURM failed: {self._broken}") from self._broken
            if self._shutdown:
                raise RuntimeError("cannot submit to a pool that was shut down")
            future: Future = Future()
            self._queue.append(_Submission(future, fn, args, kwargs))
            self._lock.notify_all()
        return future

    def _watch(self) -> None:
        last_check = 0.0
        while True:
            with self._lock:
                self._lock.wait(timeout=LINGER_S if self._queue else POLL_S)
                if (self._shutdown or self._broken) and not self._live:
                    stranded, self._queue = list(self._queue), deque()
                    break
                groups = self._groups()
            if groups:
                self._launch(groups)
            if time.monotonic() - last_check >= POLL_S:
                last_check = time.monotonic()
                self._check()
        for s in stranded:  # submitting failed: the run stops, these trials go back
            s.future.set_exception(WorkerCrashed("interrupted"))

    def _groups(self) -> list[list[_Submission]]:
        """Take queued calls for the free job slots, ``trials_per_job`` trials a job (lock held)."""
        if self._shutdown or self._broken is not None or not self._queue:
            return []
        per_job = self._trials_per_job or 1
        size = [len(s.batch.tasks) if s.batch else per_job for s in self._queue]
        lingering = time.monotonic() - self._queue[0].queued_at < LINGER_S
        if lingering and sum(size) < per_job * self._jobs_at_once:
            return []  # more of the runner's batches are on their way: pack them together
        groups: list[list[_Submission]] = []
        while self._queue and len(self._live) + len(groups) < self._jobs_at_once:
            group = [self._queue.popleft()]
            trials = size.pop(0)
            while group[0].batch and self._queue and self._queue[0].batch and trials < per_job:
                trials += size.pop(0)
                group.append(self._queue.popleft())
            groups.append(group)
        return groups

    def _launch(self, groups: list[list[_Submission]]) -> None:
        calls = [
            _BatchJob([s.batch for s in group]) if group[0].batch else _Call(group[0])  # type: ignore[misc]
            for group in groups
        ]
        try:
            with self._executor.batch():  # several jobs at once go as one job array
                jobs = [self._executor.submit(call) for call in calls]
        except Exception as exc:
            with self._lock:
                self._broken = exc
            for group in groups:  # nothing ran: the runner hands these trials back
                for s in group:
                    s.future.set_exception(WorkerCrashed(f"interrupted: {exc}"))
            return
        with self._lock:
            self._live.extend(_LiveJob(job, group) for job, group in zip(jobs, groups))
            cancelling = self._cancelling
        if cancelling:  # shut down while these were being submitted
            _scancel([job.job_id for job in jobs])

    def _check(self) -> None:
        """Resolve the futures of jobs that wrote a result, or that SLURM no longer runs."""
        with self._lock:
            live = list(self._live)
        waiting = [entry for entry in live if not entry.job.paths.result_pickle.exists()]
        for entry in live:
            if entry not in waiting:
                self._resolve(entry)
        states = _slurm_states([entry.job.job_id for entry in waiting])
        if states is None:
            return  # SLURM did not answer: ask again next time
        now = time.monotonic()
        for entry in waiting:
            state = states.get(entry.job.job_id, "GONE")
            if state not in _ENDED and state != "GONE":
                entry.ended_at = None  # pending, running, or requeued after its checkpoint
                continue
            entry.state = state
            entry.ended_at = entry.ended_at or now
            if now - entry.ended_at > RESULT_GRACE_S or entry.job.paths.result_pickle.exists():
                self._resolve(entry)

    def _resolve(self, entry: _LiveJob) -> None:
        with self._lock:
            if entry not in self._live:
                return  # shutdown took it
            self._live.remove(entry)
            self._lock.notify_all()
        if not entry.job.paths.result_pickle.exists():
            # job.result() would wait for SLURM's accounting, which may not exist: say it here
            log = (entry.job.stderr() or "").strip().splitlines()[-1:]
            lost: Exception = JobLost(
                f"SLURM job {entry.job.job_id} ended ({entry.state}) without a result"
                + (f": {log[0]}" if log else "")
                + f" (log: {entry.job.paths.stderr})"
            )
        else:
            try:
                value = entry.job.result()
            except Exception as exc:  # the job raised outside the trials (e.g. an import)
                lost = JobLost(f"SLURM job {entry.job.job_id} failed: {exc}")
            else:
                self._settle(entry, value)
                return
        for s in entry.submissions:
            s.future.set_exception(lost)

    @staticmethod
    def _settle(entry: _LiveJob, value: Any) -> None:
        if not isinstance(value, _BatchResult):
            entry.submissions[0].future.set_result(value)
            return
        for i, s in enumerate(entry.submissions):
            done = value.outcomes[i] if i < len(value.outcomes) else []
            if len(done) == len(s.batch.tasks):  # type: ignore[union-attr]
                s.future.set_result(done)
            else:  # stopped part-way: no trial to blame, the runner hands the rest back
                s.future.set_exception(WorkerCrashed(f"interrupted: {value.cause}", done))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            self._cancelling = cancel_futures
            queued, self._queue = list(self._queue), deque()
            live = list(self._live)
            self._lock.notify_all()
        for s in queued:
            s.future.set_exception(WorkerCrashed("interrupted"))
        if cancel_futures:
            if live:  # SIGTERM: each job stops its trial and returns the outcomes it has
                _scancel([entry.job.job_id for entry in live])
            deadline = time.monotonic() + CANCEL_WAIT_S
            while time.monotonic() < deadline:
                with self._lock:
                    if not self._live:
                        break
                time.sleep(0.2)
            with self._lock:
                stuck, self._live = self._live, []
                self._lock.notify_all()
            for entry in stuck:
                for s in entry.submissions:
                    s.future.set_exception(WorkerCrashed("interrupted"))
        if wait:
            self._watcher.join(timeout=CANCEL_WAIT_S)


def _slurm_states(job_ids: list[str]) -> dict[str, str] | None:
    """SLURM's state of each job it still knows, or None if squeue does not answer."""
    if not job_ids:
        return {}
    command = [
        "squeue",
        "--noheader",
        "--states=all",
        "--format=%i|%T",
        "--jobs",
        ",".join(job_ids),
    ]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return None
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        for one in _expand_array(job_id):
            states[one] = state.split()[0] if state else ""
    return states


def _expand_array(job_id: str) -> list[str]:
    """``12_[0-3,7%2]`` (the array tasks still pending) -> 12_0 .. 12_3, 12_7."""
    main, _, tasks = job_id.partition("_")
    if not tasks.startswith("["):
        return [job_id]
    ids = []
    for part in tasks.strip("[]").split("%")[0].split(","):
        low, _, high = part.partition("-")
        ids.extend(f"{main}_{i}" for i in range(int(low), int(high or low) + 1))
    return ids


def _scancel(job_ids: list[str]) -> None:
    subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60, check=False)
