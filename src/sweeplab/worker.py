"""``work``: a worker that drains trials from a shared store (PyExperimenter's executor).

Start it on as many machines as you like, by hand, from cron or from a scheduler: each
claims batches of pending trials from one, some or all experiments of the store, runs
them on its local slots, heartbeats its leases and records the outcomes. A worker that
dies loses nothing: its trials come back when its lease expires, and another worker runs
them. The functions are found from what the experiments recorded when trials were added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sweeplab.backends import Backend, make_backend
from sweeplab.errors import UsageError
from sweeplab.runner import Progress, Runner, RunReport, check_run_options
from sweeplab.store import BaseStore, open_store


def work(
    store: str | BaseStore | None = None,
    workers: int | None = None,
    *,
    backend: str | Backend = "processes",
    resources: Mapping[str, float] | None = None,
    experiments: Sequence[str] | None = None,
    max_trials: int | None = None,
    timeout: float | None = None,
    retries: int = 0,
    lease: float = 60.0,
    wait: bool = False,
    poll: float = 1.0,
    progress: Callable[[Progress], None] | None = None,
) -> RunReport:
    """Run pending trials of ``experiments`` (default: all) from ``store`` until none is left.

    Returns when nothing is pending and no other worker still runs trials that could come
    back, or with ``wait=True`` keeps polling every ``poll`` seconds for new trials.
    ``max_trials`` stops after that many (PyExperimenter's ``max_experiments``).
    ``resources`` is what each trial needs, e.g. ``{"gpus": 1}``: on the processes backend
    each slot's process gets its own GPUs (a worker cannot know what an experiment was
    given in another process, so it is told here).
    Ctrl-C or SIGTERM: stop taking trials, record the finished ones, hand back the rest.
    """
    from sweeplab.experiments import RunInterrupted

    check_run_options(timeout, retries, max_trials, lease)
    if resources and not isinstance(backend, str):
        raise UsageError(
            f"resources={dict(resources)!r} with a backend already made: give them to it, "
            "e.g. ProcessesBackend(resources=...)"
        )
    backend_obj = make_backend(backend, workers, **({"resources": resources} if resources else {}))
    store_obj = open_store(store, for_worker=True)
    records = None if experiments is None else [store_obj.experiment(n) for n in experiments]
    runner = Runner(
        store_obj,
        backend_obj,
        experiments=records,
        timeout_s=timeout,
        retries=retries,
        max_trials=max_trials,
        lease_s=lease,
        wait=wait,
        poll_s=poll,
        on_progress=progress,
    )
    report = runner.run()
    if report.interrupted:
        raise RunInterrupted(report) from runner.interruption
    return report
