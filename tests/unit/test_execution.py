"""run_trial: what a trial returns, raises, logs, and how a timeout stops it."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sweeplab.execution import run_trial
from sweeplab.target import Signature
from sweeplab.trial import ErrorKind, Outcome, Trial, TrialStatus, TrialTask


def task(**params: Any) -> TrialTask:
    return TrialTask(id=7, params=params, repetition=2, seed=1234, attempt=1)


def run(fn: Callable[..., Any], timeout_s: float | None = None, **params: Any) -> Outcome:
    wants_trial = Signature.of(fn).wants_trial
    return run_trial(fn, task(**params), wants_trial, None, "owner", timeout_s)


def run_in_thread(fn: Callable[..., Any], timeout_s: float | None = None) -> Outcome:
    box: list[Outcome] = []
    worker = threading.Thread(target=lambda: box.append(run(fn, timeout_s)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the trial was not stopped"
    return box[0]


# ---------------------------------------------------------------------------- results


def test_dict_result() -> None:
    outcome = run(lambda n: {"y": n * 2, "arr": np.arange(2)}, n=3)
    assert outcome.trial_id == 7
    assert outcome.status is TrialStatus.DONE
    assert json.loads(outcome.result_json) == {"y": 6, "arr": [0, 1]}
    assert outcome.error is None and outcome.error_kind is None
    assert outcome.duration_s >= 0
    assert outcome.started_at > 0
    assert outcome.host


@pytest.mark.parametrize(
    ("value", "stored"),
    [(2.5, {"value": 2.5}), (np.float64(1.5), {"value": 1.5}), ("s", {"value": "s"})],
)
def test_scalar_result_is_stored_as_value(value, stored) -> None:
    outcome = run(lambda: value)
    assert outcome.status is TrialStatus.DONE
    assert json.loads(outcome.result_json) == stored


def test_no_result_is_an_empty_dict() -> None:
    outcome = run(lambda: None)
    assert outcome.status is TrialStatus.DONE
    assert outcome.result_json == "{}"


def test_params_and_trial_are_passed() -> None:
    seen: dict[str, Any] = {}

    def fn(n, algo, trial):
        seen.update(n=n, algo=algo, trial=trial)

    run(fn, n=1, algo="ga")
    assert seen["n"] == 1 and seen["algo"] == "ga"
    trial = seen["trial"]
    assert isinstance(trial, Trial)
    assert (trial.id, trial.repetition, trial.seed, trial.attempt) == (7, 2, 1234, 1)
    assert trial.params == {"n": 1, "algo": "ga"}


# ----------------------------------------------------------------------------- errors


def test_exception_fails_the_trial_with_traceback() -> None:
    def boom():
        raise ValueError("bad value\nsecond line of the message")

    outcome = run(boom)
    assert outcome.status is TrialStatus.FAILED
    assert outcome.error_kind is ErrorKind.EXCEPTION
    assert outcome.error == "ValueError: bad value"  # one line
    assert "Traceback" in outcome.traceback
    assert "in boom" in outcome.traceback
    assert outcome.result_json is None


def test_a_nul_byte_in_an_error_is_written_out() -> None:
    # PostgreSQL's text cannot hold it, and would refuse the batch of outcomes with it
    def boom():
        raise ValueError("bad \x00 byte")

    outcome = run(boom)
    assert outcome.error == "ValueError: bad \\x00 byte"
    assert "\x00" not in outcome.traceback and "bad \\x00 byte" in outcome.traceback


def test_exception_without_message() -> None:
    def boom():
        raise KeyError

    assert run(boom).error == "KeyError"


def test_non_json_result_fails_naming_the_field() -> None:
    outcome = run(lambda: {"model": object()})
    assert outcome.status is TrialStatus.FAILED
    assert outcome.error_kind is ErrorKind.RESULT
    assert "model" in outcome.error
    assert "save_artifact" in outcome.error  # and says what to do instead
    assert outcome.result_json is None


def test_nan_result_fails() -> None:
    outcome = run(lambda: {"loss": float("nan")})
    assert outcome.error_kind is ErrorKind.RESULT
    assert "loss" in outcome.error


@pytest.mark.parametrize("code", [0, 3, None, "bye"])
def test_sys_exit_fails_the_trial_and_not_the_caller(code) -> None:
    outcome = run(lambda: sys.exit(code))
    assert outcome.status is TrialStatus.FAILED
    assert outcome.error_kind is ErrorKind.EXCEPTION
    assert outcome.error.startswith("SystemExit")


def test_keyboard_interrupt_is_not_swallowed() -> None:
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(interrupted)


# --------------------------------------------------------------------------- timeouts


def test_timeout_stops_a_sleep_in_the_main_thread() -> None:
    assert threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGALRM)
    t0 = time.perf_counter()
    outcome = run(lambda: time.sleep(5), timeout_s=0.2)
    elapsed = time.perf_counter() - t0
    assert outcome.status is TrialStatus.FAILED
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert "0.2 s" in outcome.error
    assert 0.15 < elapsed < 1.5
    assert signal.getsignal(signal.SIGALRM) is handler  # put back as it was


def test_timeout_is_not_swallowed_by_except_exception() -> None:
    def stubborn():
        try:
            time.sleep(5)
        except Exception:
            time.sleep(5)

    t0 = time.perf_counter()
    assert run(stubborn, timeout_s=0.2).error_kind is ErrorKind.TIMEOUT
    assert time.perf_counter() - t0 < 1.5


def test_timeout_stops_a_busy_loop_in_another_thread() -> None:
    def spin():
        end = time.monotonic() + 5
        n = 0
        while time.monotonic() < end:
            n += 1
        return n

    t0 = time.perf_counter()
    outcome = run_in_thread(spin, timeout_s=0.3)
    assert outcome.status is TrialStatus.FAILED
    assert outcome.error_kind is ErrorKind.TIMEOUT
    assert time.perf_counter() - t0 < 2


@pytest.mark.parametrize("in_thread", [False, True])
def test_a_trial_within_its_timeout_leaves_no_timer_behind(in_thread) -> None:
    def quick_then_wait():
        outcome = run(lambda: 1, timeout_s=0.1)
        time.sleep(0.3)  # a stray timer would raise here, past the timeout
        return outcome

    if in_thread:
        box: list[Outcome] = []
        worker = threading.Thread(target=lambda: box.append(quick_then_wait()))
        worker.start()
        worker.join(5)
        outcome = box[0]
    else:
        outcome = quick_then_wait()
    assert outcome.status is TrialStatus.DONE
    assert json.loads(outcome.result_json) == {"value": 1}


# ---------------------------------------------------------------------------- metrics


def test_logged_metrics_come_back_with_steps() -> None:
    def fn(trial):
        for step in range(3):
            trial.log(step=step, loss=1 / (step + 1), acc=np.float32(0.5))
        trial.log(final=7)
        return {"ok": True}

    t0 = time.time()
    outcome = run(fn)
    assert outcome.status is TrialStatus.DONE
    rows = [(step, name, value) for step, name, value, _ in outcome.metrics]
    assert rows == [
        (0, "loss", 1.0),
        (0, "acc", 0.5),
        (1, "loss", 0.5),
        (1, "acc", 0.5),
        (2, "loss", pytest.approx(1 / 3)),
        (2, "acc", 0.5),
        (None, "final", 7.0),
    ]
    assert all(t0 <= at <= time.time() for *_, at in outcome.metrics)


def test_metrics_logged_before_a_failure_are_kept() -> None:
    def fn(trial):
        trial.log(step=0, loss=2.0)
        raise RuntimeError("diverged")

    outcome = run(fn)
    assert outcome.status is TrialStatus.FAILED
    assert [(s, n, v) for s, n, v, _ in outcome.metrics] == [(0, "loss", 2.0)]


def test_logging_a_non_number_fails_the_trial() -> None:
    def fn(trial):
        trial.log(loss="high")

    outcome = run(fn)
    assert outcome.status is TrialStatus.FAILED
    assert outcome.error_kind is ErrorKind.EXCEPTION
    assert outcome.error.startswith("TypeError: trial.log(loss='high'): metrics must be numbers")
    assert outcome.metrics == []


def test_log_raises_type_error_for_objects() -> None:
    trial = Trial(task())
    with pytest.raises(TypeError, match="metrics must be numbers"):
        trial.log(model=object())
    with pytest.raises(TypeError, match="metrics must be numbers"):
        trial.log(xs=[1.0])


def test_log_refuses_numeric_strings() -> None:
    with pytest.raises(TypeError, match="metrics must be numbers"):
        Trial(task()).log(loss="0.5")
