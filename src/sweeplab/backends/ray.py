"""The Ray backend: trials run as Ray tasks, on an existing cluster or a local one.

    exp.run(backend="ray", workers=2, resources={"cpus": 1, "gpus": 0.5})
    exp.run(backend="ray", address="ray://head:10001")

``resources`` are per trial and map onto Ray's scheduler (``num_cpus``, ``num_gpus``,
fractions allowed; any other key is a custom Ray resource), so Ray places trials and
never oversubscribes a GPU.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Callable, Mapping
from typing import Any

from sweeplab.backends.base import Backend
from sweeplab.errors import BackendError

try:
    import ray
except ImportError as exc:  # the registry turns this into "pip install sweeplab[ray]"
    raise ImportError("ray is not installed") from exc


def ray_options(resources: Mapping[str, float] | None) -> dict[str, Any]:
    """sweeplab's resource names -> ray.remote options."""
    resources = dict(resources or {})
    options: dict[str, Any] = {
        "num_cpus": float(resources.pop("cpus", 1)),
        "num_gpus": float(resources.pop("gpus", 0)),
    }
    if "mem_gb" in resources:
        options["memory"] = int(float(resources.pop("mem_gb")) * 2**30)
    if resources:
        options["resources"] = {k: float(v) for k, v in resources.items()}
    return options


class _RayExecutor(cf.Executor):
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._remotes: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = ray.remote(fn).options(max_retries=0, **self._options)
        return remote.remote(*args, **kwargs).future()


@ray.remote
class _DetachedWorker:
    """A pull worker that lives on after its submitter: it runs ``sweeplab.work`` on a
    thread of its own and ends itself when that returns."""

    def __init__(self, store_url: str, experiments: list[str], options: dict[str, Any]) -> None:
        import threading

        threading.Thread(target=self._work, args=(store_url, experiments, options)).start()

    def _work(self, store_url: str, experiments: list[str], options: dict[str, Any]) -> None:
        from sweeplab.worker import work

        try:
            work(store_url, 1, backend="serial", experiments=experiments, **options)
        finally:
            os._exit(0)  # the actor's process: nothing else runs in it

    def ping(self) -> bool:
        return True


class RayBackend(Backend):
    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        resources: Mapping[str, float] | None = None,
        **init_options: Any,
    ) -> None:
        self._address = address
        self._options = ray_options(resources)
        if self._options["num_cpus"] <= 0 and self._options["num_gpus"] <= 0:
            raise BackendError("resources need cpus or gpus above 0 for Ray to place trials")
        self._init_options = init_options
        self._started_here = False
        super().__init__(workers)

    def start(self) -> cf.Executor:
        if not ray.is_initialized():
            options = {"include_dashboard": False, "log_to_driver": True, **self._init_options}
            if self._address is None:
                options.setdefault("num_cpus", self.slots)
            # workers import the experiment's files by path; keep them beside ours
            options.setdefault("runtime_env", {"env_vars": {"PYTHONPATH": os.getcwd()}})
            ray.init(address=self._address, **options)
            self._started_here = True
        total = ray.cluster_resources()
        per_trial = self._options["num_cpus"] or 1
        self.slots = max(1, int(total.get("CPU", self.slots) // per_trial))
        if self._options["num_gpus"] > 0:
            gpus = total.get("GPU", 0) / self._options["num_gpus"]
            if gpus < 1:
                raise BackendError(
                    f"no GPU in the Ray cluster for a trial asking {self._options['num_gpus']}"
                )
            self.slots = min(self.slots, int(gpus))
        return _RayExecutor(self._options)

    def submit_workers(self, store_url: str, experiments: list[str], **work_options: Any) -> int:
        """Start detached pull workers on the cluster and return (``run(wait=False)``)."""
        if self._address is None:
            raise BackendError(
                "wait=False needs a Ray cluster that outlives this process (`ray start --head`):"
                " pass address='auto' or the head's address"
            )
        self.start()
        actors = [
            _DetachedWorker.options(lifetime="detached", **self._options).remote(
                store_url, experiments, work_options
            )
            for _ in range(self.slots)
        ]
        ray.get([a.ping.remote() for a in actors])  # they exist before we go
        self.stop(cancel=False)
        return len(actors)

    def stop(self, *, cancel: bool) -> None:
        if self._started_here:
            ray.shutdown()
