"""The runner's own policies, on the in-process memory store: what a run does to the
garbage collector, how batches shrink at the end, how it waits for others' trials."""

from __future__ import annotations

import gc
import itertools
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import sweeplab as sl
from sweeplab.runner import FIRST_POLL_S, poll_delay
from sweeplab.store.memory import MemoryStore


def freeze_count() -> dict[str, int]:
    return {"frozen": gc.get_freeze_count()}


def test_a_run_keeps_older_objects_frozen_and_thaws_them_after() -> None:
    before = gc.get_freeze_count()
    exp = sl.Experiment(freeze_count, store=MemoryStore())
    exp.add(sl.cases([{}]))

    exp.run("serial")

    (seen,) = exp.results()["frozen"]
    assert seen > before  # the trial ran with the objects of before the run frozen
    assert gc.get_freeze_count() == before


def test_a_failing_run_thaws_them_too() -> None:
    before = gc.get_freeze_count()

    class Broken(MemoryStore):
        def claim(self, *args, **kwargs):
            raise RuntimeError("the store went away")

    exp = sl.Experiment(freeze_count, store=Broken())
    exp.add(sl.cases([{}]))
    try:
        exp.run("serial")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == before


def noop(i: int) -> dict[str, int]:
    return {"i": i}


class ClaimLog(MemoryStore):
    """Remembers each claim's limit and how many trials were pending when it came."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[tuple[int, int]] = []

    def claim(self, lease, limit, lease_s, max_attempts, experiment_ids=None):
        pending = sum(self.counts(e.id)[sl.TrialStatus.PENDING] for e in self.experiments())
        self.claims.append((limit, pending))
        return super().claim(lease, limit, lease_s, max_attempts, experiment_ids)


def test_batches_shrink_at_the_end_so_every_slot_gets_a_share() -> None:
    store = ClaimLog()
    exp = sl.Experiment(noop, store=store)
    exp.add(sl.grid(i=range(400)))

    report = exp.run("threads", 4)

    assert report.done == 400
    slots = 4
    for limit, pending in store.claims:
        if pending:  # (the last claim, with nothing left, may ask for anything)
            assert limit <= max(1, pending // (2 * slots)), store.claims
    assert store.claims[-2][0] == 1  # the last trials went out one at a time


def test_a_serial_run_claims_by_trial_duration_alone() -> None:
    store = ClaimLog()
    exp = sl.Experiment(noop, store=store)
    exp.add(sl.grid(i=range(400)))

    exp.run("serial")

    limits = [limit for limit, _ in store.claims]
    assert limits[:3] == [1, 4, 16]  # growing from one trial, nothing capped by what is left
    assert max(limits) > 400 // 2


def test_waiting_for_others_trials_starts_short_and_backs_off_to_poll_s() -> None:
    waited, wakes = 0.0, []
    while waited < 10:  # a runner's waits, one after the other
        waited += poll_delay(waited, poll_s=1.0)
        wakes.append(waited)

    delays = [b - a for a, b in itertools.pairwise([0.0, *wakes])]
    assert delays[0] == FIRST_POLL_S
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(delays))
    assert delays[-1] == 1.0
    # whenever the others' trials end, the next look comes at most a quarter late
    for before, after in itertools.pairwise(wakes):
        assert after - before <= max(FIRST_POLL_S, 0.25 * before) + 1e-9
    assert len([w for w in wakes if w <= 1.0]) < 20  # and a store is not polled in a loop


def test_objects_the_application_froze_stay_frozen() -> None:
    gc.freeze()  # a pre-fork server keeping its pages shared
    try:
        frozen = gc.get_freeze_count()
        exp = sl.Experiment(freeze_count, store=MemoryStore())
        exp.add(sl.cases([{}]))
        exp.run("serial")
        # not thawed (which would make it 0); frozen objects that died have left the count
        assert gc.get_freeze_count() > frozen // 2
    finally:
        gc.unfreeze()


def test_a_waiting_worker_takes_trials_added_after_it_started_in_full_batches() -> None:
    store = ClaimLog()
    exp = sl.Experiment(noop, store=store)
    exp.add(sl.grid(i=range(2)))
    exp.run("threads", 4)  # the experiment's first trials, done
    exp.add(sl.grid(i=range(2, 2000)))  # more arrive; a stale count must not cap batches
    store.claims.clear()

    sl.work(store, 4, backend="threads")

    assert store.counts(exp._experiment().id)[sl.TrialStatus.DONE] == 2000
    assert max(limit for limit, _ in store.claims) > 1


class OneMachine(ThreadPoolExecutor):
    """An engine whose two slots share one machine: a batch holding the killer trial takes
    down every batch running there, and the engine only says it lost them (as Dask's
    KilledWorker does). A real executor, run in this process."""

    def __init__(self, killer: int) -> None:
        super().__init__(max_workers=2)
        self._killer = killer
        self._running: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        batch, outer = args[0], Future()

        def settle(future: Future, value=None, error=None) -> None:
            with self._lock:
                if future.done():
                    return
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)

        def run() -> None:
            with self._lock:
                self._running.add(outer)
            try:
                if any(t.params["i"] == self._killer for t in batch.tasks):
                    time.sleep(0.02)  # whatever runs beside it is under way by now
                    with self._lock:
                        victims = list(self._running)
                    for future in victims:
                        settle(future, error=RuntimeError("the machine went down"))
                    return
                time.sleep(0.04)  # longer than the killer takes to strike
                settle(outer, fn(*args, **kwargs))
            finally:
                with self._lock:
                    self._running.discard(outer)

        super().submit(run)
        return outer


KILLER = 31


def sleeper(i: int) -> dict[str, int]:
    return {"i": i}


def test_a_trial_that_takes_down_its_machine_is_the_only_one_blamed() -> None:
    exp = sl.Experiment(sleeper, store=MemoryStore())
    exp.add(sl.grid(i=range(60)))  # the killer comes once batches hold several trials

    with OneMachine(killer=KILLER) as engine:
        report = exp.run(engine)

    frame = exp.results().set_index("i")
    assert (report.done, report.failed) == (59, 1), frame["error"].dropna().to_dict()
    assert frame.loc[KILLER, "error_kind"] == "crash"


def test_a_retried_killer_is_blamed_again_and_nobody_else() -> None:
    exp = sl.Experiment(sleeper, store=MemoryStore())
    exp.add(sl.grid(i=range(60)))

    with OneMachine(killer=KILLER) as engine:
        report = exp.run(engine, retries=1)

    frame = exp.results().set_index("i")
    assert (report.done, report.failed, report.retried) == (59, 1, 1)
    assert frame.loc[KILLER, "attempts"] == 2
