"""The processes backend: trials run in a pool of local worker processes.

``concurrent.futures.ProcessPoolExecutor`` breaks as a whole when one worker dies and
cannot stop one overrunning call, so this pool is our own: one process per slot
(``process_worker``), a fresh interpreter or, in the ``sweeplab`` program where it is safe,
a fork of it (``forked``), each with a reader thread in the runner's process. A worker
that dies fails only the trial it was running, with the cause (exit code or signal),
and is replaced; a trial past its timeout that does not stop by itself is killed.
"""

from __future__ import annotations

import collections
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from sweeplab.backends.base import Backend, WorkerCrashed
from sweeplab.backends.forked import ForkedProcess, fork_process_worker, may_fork
from sweeplab.backends.gpus import gpu_slots, visible_gpus
from sweeplab.backends.process_worker import dumps, receive, send
from sweeplab.errors import BackendError
from sweeplab.execution import run_batch
from sweeplab.interpreter import note_user_code
from sweeplab.trial import Outcome

#: how long a trial past its timeout may take to stop by itself before it is killed
TIMEOUT_GRACE_S = 2.0
#: how long a worker has to exit after SIGTERM before SIGKILL
STOP_GRACE_S = 2.0


@dataclass
class _Job:
    id: int
    payload: bytes
    future: Future
    #: per-trial timeouts of a batch, to spot a trial stuck past its own
    timeout_s: float | None
    outcomes: list[Outcome] = field(default_factory=list)
    #: when the trial now running started (the previous one's outcome arrived)
    trial_started: float = 0.0


class _Worker:
    """One slot's process, and the thread in this process that reads its replies."""

    def __init__(self, pool: ProcessPool, slot: int, *, forked: bool = False) -> None:
        self.pool = pool
        self.slot = slot
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        self.process: subprocess.Popen | ForkedProcess
        if forked:
            self.process = fork_process_worker(to_child_r, from_child_w, pool.slot_env(slot))
        else:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sweeplab.backends.process_worker",
                    str(to_child_r),
                    str(from_child_w),
                    str(os.getpid()),
                ],
                pass_fds=(to_child_r, from_child_w),
                env={**os.environ, **pool.slot_env(slot)},
            )
        os.close(to_child_r)
        os.close(from_child_w)
        self.job: _Job | None = None
        self.killed_for_timeout = False
        self.reader = threading.Thread(target=self._read, daemon=True, name="sweeplab-reader")

    def run(self, job: _Job) -> None:
        self.job = job
        job.trial_started = time.monotonic()
        try:
            send(self.to_child, ("call", job.id, job.payload))
        except OSError:
            pass  # the child is gone; the reader reports it

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.from_child], [], [], 0.2)
            if not ready:
                self._check_timeout()
                continue
            try:
                message = receive(self.from_child)
            except (EOFError, OSError):
                self.pool._worker_died(self, self._death_cause())
                return
            kind, job_id, value = message
            job = self.job
            if job is None or job.id != job_id:
                continue
            if kind == "outcome":
                job.outcomes.append(value)
                job.trial_started = time.monotonic()
            else:
                if value is not None:  # an error, or a value of any call: maybe a user's class
                    note_user_code()
                self.job = None
                self.pool._job_finished(self, job, kind, value)

    def _check_timeout(self) -> None:
        job = self.job
        if job is None or job.timeout_s is None or self.killed_for_timeout:
            return
        if time.monotonic() - job.trial_started > job.timeout_s + TIMEOUT_GRACE_S:
            self.killed_for_timeout = True
            self.process.kill()

    def _death_cause(self) -> str:
        code = self.process.wait()
        if self.killed_for_timeout:
            return "timeout: the trial did not stop at its timeout and its process was killed"
        if code < 0:
            name = signal.Signals(-code).name
            hint = {
                "SIGKILL": " (out of memory, or killed by someone)",
                "SIGSEGV": " (segmentation fault)",
                "SIGABRT": " (aborted)",
                "SIGBUS": " (bus error)",
            }.get(name, "")
            return f"crash: the process running the trial was killed by {name}{hint}"
        return f"crash: the process running the trial exited with code {code}"

    def stop(self, force: bool) -> None:
        if force:
            self.process.terminate()
        else:
            try:
                send(self.to_child, ("stop",))
            except OSError:
                pass

    def close_pipes(self) -> None:
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass


class ProcessPool(Executor):
    """An executor over ``workers`` local worker processes, started on first use.

    ``prestart``: start every worker now, so that they boot while the runner claims its
    first trials; forked from this process where that is safe (``backends.forked``).
    """

    def __init__(
        self,
        workers: int,
        slot_envs: list[dict[str, str]] | None = None,
        *,
        prestart: bool = False,
    ) -> None:
        self._size = workers
        #: environment of each slot's process (its CUDA_VISIBLE_DEVICES, when trials want GPUs)
        self._slot_envs = slot_envs or []
        self._lock = threading.Lock()
        self._queue: collections.deque[_Job] = collections.deque()
        self._idle: list[_Worker] = []
        self._workers: list[_Worker] = []
        self._next_id = 0
        self._shutdown = False
        self._prestart = prestart
        if prestart and may_fork():
            # every fork before the first thread of ours: the children inherit no thread
            self._workers = [_Worker(self, slot, forked=True) for slot in range(workers)]
            self._idle = list(self._workers)
            self._prestart = False
            for worker in self._workers:
                worker.reader.start()
        # Linux kills a child when the *thread* that started it ends (PR_SET_PDEATHSIG),
        # so every later worker is started by this one thread, which lives as long as the
        # pool (forked ones, by the thread that made the pool: the program's main thread).
        self._spawn_wanted = threading.Event()
        self._spawner = threading.Thread(
            target=self._spawn_loop, daemon=True, name="sweeplab-spawner"
        )
        self._spawner.start()
        if self._prestart:
            self._spawn_wanted.set()

    def slot_env(self, slot: int) -> dict[str, str]:
        return self._slot_envs[slot] if slot < len(self._slot_envs) else {}

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        batch = args[0] if fn is run_batch and args else None
        job = _Job(
            id=self._take_id(),
            # a batch holds its function as bytes already: the standard pickle will do
            payload=dumps((fn, args, kwargs)) if batch else cloudpickle.dumps((fn, args, kwargs)),
            future=future,
            timeout_s=getattr(batch, "timeout_s", None),
        )
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._queue.append(job)
            self._dispatch()
        return future

    def _take_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def _dispatch(self) -> None:
        """Give queued jobs to idle workers; ask for more workers if there is room (lock held)."""
        while self._queue and self._idle:
            self._idle.pop().run(self._queue.popleft())
        if self._queue and len(self._workers) < self._size:
            self._spawn_wanted.set()

    def _spawn_loop(self) -> None:
        while True:
            self._spawn_wanted.wait()
            self._spawn_wanted.clear()
            with self._lock:
                if self._shutdown:
                    return
                while (self._queue or self._prestart) and len(self._workers) < self._size:
                    taken = {w.slot for w in self._workers}
                    slot = min(set(range(self._size)) - taken)
                    worker = _Worker(self, slot)
                    worker.reader.start()
                    self._workers.append(worker)
                    if self._queue:
                        worker.run(self._queue.popleft())
                    else:
                        self._idle.append(worker)
                self._prestart = False

    def _job_finished(self, worker: _Worker, job: _Job, kind: str, value: Any) -> None:
        if kind == "result":
            job.future.set_result(job.outcomes if value is None else value)
        else:
            job.future.set_exception(value)
        with self._lock:
            self._idle.append(worker)
            if not self._shutdown:
                self._dispatch()

    def _worker_died(self, worker: _Worker, cause: str) -> None:
        job = worker.job
        worker.job = None
        worker.close_pipes()
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            if not self._shutdown:
                self._dispatch()  # replaces the dead worker if work is waiting
        if job is not None and not job.future.done():
            blamed = None if self._shutdown else len(job.outcomes)
            job.future.set_exception(
                WorkerCrashed(
                    "interrupted" if self._shutdown else cause,
                    job.outcomes,
                    blamed,
                    timed_out=worker.killed_for_timeout,
                    running_since=time.time() - (time.monotonic() - job.trial_started),
                )
            )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            queued, self._queue = list(self._queue), collections.deque()
            workers = list(self._workers)
        for job in queued:
            job.future.set_exception(WorkerCrashed("interrupted"))
        for worker in workers:
            worker.stop(force=cancel_futures)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in workers:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        if wait:
            for worker in workers:
                worker.reader.join(timeout=STOP_GRACE_S)
        self._spawn_wanted.set()  # the spawner ends only now: its children are gone


class ProcessesBackend(Backend):
    """``resources={"gpus": g}``: each slot's process gets its own CUDA_VISIBLE_DEVICES."""

    name = "processes"
    isolates_crashes = True
    kills_on_timeout = True

    def __init__(
        self, workers: int | None = None, *, resources: Mapping[str, float] | None = None
    ) -> None:
        resources = dict(resources or {})
        unknown = set(resources) - {"cpus", "gpus"}
        if unknown:
            raise BackendError(
                f"unknown resources {sorted(unknown)} for the processes backend: use cpus, gpus"
            )
        devices = gpu_slots(float(resources.get("gpus", 0)), visible_gpus())
        cpus = float(resources.get("cpus", 1))
        if workers is None:
            # GPU trials: one slot per GPU share; CPU trials: one per `cpus` cores
            workers = len(devices) or max(1, math.floor((os.cpu_count() or 1) / max(cpus, 1e-9)))
        super().__init__(workers)
        if devices:
            self.slots = min(self.slots, len(devices))
        self._envs = [{"CUDA_VISIBLE_DEVICES": d} for d in devices]

    def start(self) -> Executor:
        self._pool = ProcessPool(self.slots, self._envs, prestart=True)
        return self._pool

    def stop(self, *, cancel: bool) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)
