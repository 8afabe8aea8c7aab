"""The Dask backend: trials run on a Dask cluster, an existing one or a LocalCluster.

    exp.run(backend="dask", workers=2, threads_per_worker=2)       # a LocalCluster for the run
    exp.run(backend="dask", address="tcp://scheduler:8786")        # an existing scheduler

With several threads per worker process, trials of one process run side by side and
share what the process has loaded (Experimenter.jl's heterogeneous mode). A worker
that dies fails its batch with Dask's KilledWorker; the runner then runs those trials
one by one, so the one that kills workers is found and failed alone.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from sweeplab.backends.base import Backend
from sweeplab.errors import BackendError

try:
    from distributed import Client, LocalCluster
except ImportError as exc:  # the registry turns this into "pip install sweeplab[dask]"
    raise ImportError("dask.distributed is not installed") from exc


CONNECT_TIMEOUT_S = 10


def _connect(address: str) -> Client:
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise BackendError(
            f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s "
            f"({type(exc).__name__}): check --address and that the scheduler runs"
        ) from exc


class DaskBackend(Backend):
    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        *,
        threads_per_worker: int = 1,
        address: str | None = None,
        **cluster_options: Any,
    ) -> None:
        if threads_per_worker < 1:
            raise BackendError(f"threads_per_worker={threads_per_worker}: give 1 or more")
        self._address = address
        self._threads = threads_per_worker
        self._options = cluster_options
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        super().__init__(workers)
        if address is None:
            self._processes = self.slots
            self.slots = self.slots * threads_per_worker

    def start(self) -> Executor:
        if self._address is not None:
            self._client = _connect(self._address)
            info = self._client.scheduler_info()["workers"]
            self.slots = max(1, sum(w.get("nthreads", 1) for w in info.values()))
        else:
            import dask

            # the runner isolates the trial that kills workers by itself: a task whose
            # worker died fails at once, instead of killing three more workers first
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self._cluster = LocalCluster(
                    n_workers=self._processes,
                    threads_per_worker=self._threads,
                    processes=True,
                    dashboard_address=None,
                    **self._options,
                )
            self._client = Client(self._cluster)
        return self._client.get_executor(pure=False)

    def submit_workers(self, store_url: str, experiments: list[str], **work_options: Any) -> int:
        """Start pull workers on the cluster and return at once (``run(wait=False)``).

        Each worker is a task that runs ``sweeplab.work`` against the store, so it claims,
        heartbeats and records on its own; the tasks are fired and forgotten, and go on
        after this process exits. Needs a running scheduler (``address=``).
        """
        if self._address is None:
            raise BackendError(
                "wait=False needs a Dask cluster that outlives this process: pass "
                "address='tcp://scheduler:8786' (a LocalCluster stops when the run returns)"
            )
        from distributed import fire_and_forget

        from sweeplab.worker import work

        with _connect(self._address) as client:
            threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
            futures = [
                client.submit(
                    work,
                    store_url,
                    1,
                    backend="serial",
                    experiments=experiments,
                    pure=False,
                    **work_options,
                )
                for _ in range(max(1, threads))
            ]
            fire_and_forget(futures)
        return len(futures)

    def stop(self, *, cancel: bool) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
