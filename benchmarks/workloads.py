"""The trial functions every tool runs, the sizes of the workloads, and the CPU calibration.

Standard library only: the peers' environments import this same module (the repository
root is on their ``PYTHONPATH``), so every tool runs byte-for-byte the same trial code.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass


def noop(a: int, b: int = 0) -> dict[str, int]:
    """W0 (and W4, with a alone): a trial that does nothing, so all that is measured is the
    tool's overhead."""
    return {"y": a * b}


def spin(loops: int) -> int:
    """Pure-Python CPU work: holds the GIL, so threads cannot overlap it."""
    x = 0
    for k in range(loops):
        x = (x + k * k) % 1_000_003
    return x


def burn(i: int, loops: int) -> dict[str, int]:
    """W1: about ``W1_TRIAL_S`` of CPU once ``loops`` is calibrated."""
    return {"i": i, "x": spin(loops)}


def nap(i: int, seconds: float) -> dict[str, int]:
    """W2: a trial that waits (I/O, a remote service) without using the CPU."""
    time.sleep(seconds)
    return {"i": i}


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; ``QUICK`` is for developing the suite itself."""

    w0_a: int = 40
    w0_b: int = 25
    w1_trials: int = 200
    w1_trial_s: float = 0.02
    w1_workers: int = 2
    w2_trials: int = 100
    w2_sleep_s: float = 0.05
    w2_slots: int = 8
    #: W3 adds a w3_side x w3_side grid
    w3_side: int = 1000
    #: W3 reads back a store of this many done trials (w3_done_a x w3_done_b)
    w3_done_a: int = 400
    w3_done_b: int = 250
    w4_trials: int = 10_000
    w4_workers: tuple[int, ...] = (1, 2, 4, 8)
    #: repetitions of the measurements that take about a second or less
    repeat: int = 3

    @property
    def w0_trials(self) -> int:
        return self.w0_a * self.w0_b

    @property
    def w3_done(self) -> int:
        return self.w3_done_a * self.w3_done_b

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "w0_trials": self.w0_trials, "w3_done": self.w3_done}


FULL = Sizes()
QUICK = Sizes(
    w0_a=10,
    w0_b=10,
    w1_trials=40,
    w2_trials=24,
    w3_side=100,
    w3_done_a=50,
    w3_done_b=100,
    w4_trials=1000,
    w4_workers=(1, 2),
    repeat=1,
)


def time_spin(loops: int, times: int = 5) -> float:
    """Median CPU seconds of one ``spin(loops)`` on this machine.

    CPU time, not wall time: other processes on a busy machine stretch the wall clock of
    a calibration run, which would shrink every trial; they do not change how much CPU
    one trial needs.
    """
    samples = []
    for _ in range(times):
        t0 = time.thread_time()
        spin(loops)
        samples.append(time.thread_time() - t0)
    return statistics.median(samples)


def calibrate(target_s: float) -> tuple[int, float]:
    """The loop count for which one ``burn`` takes about ``target_s``, and its measured time.

    Done once per suite run, in the suite's own process, and handed to every tool, so
    every tool runs the same amount of work; the ideal wall time comes from the same
    measurement.
    """
    loops = 20_000
    for _ in range(3):  # a short probe first, then refine where timer noise is small
        loops = max(1000, int(loops * target_s / time_spin(loops, times=3)))
    return loops, time_spin(loops, times=9)
