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

    def stop(self, *, cancel: bool) -> None:
        if self._started_here:
            ray.shutdown()
